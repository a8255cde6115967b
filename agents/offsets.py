"""``OffsetTracker``: which offset of a partition is safe to commit.

Runs of one partition finish out of offset order (different subjects run
concurrently), but Kafka keeps a single committed offset per partition: the
next offset a new owner reads. Committing it past a record whose run has not
settled loses that record if the worker dies. So the committable offset is the
lowest offset dispatched but not settled, or, when everything dispatched has
settled, the last dispatched offset + 1.

Offsets arrive increasing per partition but not dense (compaction and
transaction markers leave holes), so the tracker never assumes ``offset + 1``
follows ``offset``: it only reasons about offsets it was given.

Memory per partition is the window from the lowest unsettled offset to the last
dispatched one; the settled prefix is dropped as soon as it is settled. That
window is also exactly what a crash makes the next owner read again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

__all__ = ["OffsetTracker"]


@dataclass
class _Window:
    """One partition: offsets from the lowest unsettled to the last dispatched."""

    offsets: deque[int] = field(default_factory=deque)
    unsettled: set[int] = field(default_factory=set)
    last: int | None = None
    returned: int | None = None  # the last value committable() returned


class OffsetTracker:
    """Dispatched and settled offsets per partition (any hashable ``tp``)."""

    def __init__(self) -> None:
        self._windows: dict[Hashable, _Window] = {}

    def dispatched(self, tp: Hashable, offset: int) -> None:
        """Record that ``offset`` of ``tp`` was handed out for processing.

        Offsets must increase per partition (gaps allowed); an offset at or
        below the last one means the caller re-read the partition without
        calling :meth:`forget` first, and the answer would be wrong, so it raises.
        """
        window = self._windows.setdefault(tp, _Window())
        if window.last is not None and offset <= window.last:
            raise ValueError(
                f"offset {offset} of {tp!r} does not follow the last dispatched {window.last}"
            )
        window.offsets.append(offset)
        window.unsettled.add(offset)
        window.last = offset

    def settled(self, tp: Hashable, offset: int) -> None:
        """Record that the run of ``offset`` settled (its outputs are confirmed)."""
        window = self._windows.get(tp)
        if window is None or offset not in window.unsettled:
            raise ValueError(f"offset {offset} of {tp!r} is not dispatched and unsettled")
        window.unsettled.discard(offset)
        # Drop the settled prefix: memory stays the unsettled window.
        while window.offsets and window.offsets[0] not in window.unsettled:
            window.offsets.popleft()

    def committable(self, tp: Hashable) -> int | None:
        """The offset to commit for ``tp`` (the next one to read), or None if
        nothing was dispatched since the tracker started or forgot ``tp``."""
        window = self._windows.get(tp)
        if window is None or window.last is None:
            return None
        offset = window.offsets[0] if window.offsets else window.last + 1
        # Real checks, not `assert`: `python -O` strips asserts, and this is the
        # line between at-least-once and losing a record. Both follow from the
        # bookkeeping above; if either ever fails, committing would skip an
        # unsettled record or move the commit backwards, and a crash is better
        # than either. The first is checked against the unsettled set itself
        # (O(unsettled), a few hundred at most), not against the window's head,
        # so a bug in the pruning cannot hide from it.
        if window.unsettled and offset > min(window.unsettled):
            raise AssertionError(
                f"committable offset {offset} of {tp!r} passes the unsettled offset "
                f"{min(window.unsettled)}"
            )
        if window.returned is not None and offset < window.returned:
            raise AssertionError(
                f"committable offset of {tp!r} went back from {window.returned} to {offset}"
            )
        window.returned = offset
        return offset

    def position(self, tp: Hashable) -> int | None:
        """The next offset of ``tp`` to read: the last dispatched + 1 (None if
        nothing was dispatched since the tracker started or forgot ``tp``)."""
        window = self._windows.get(tp)
        return None if window is None or window.last is None else window.last + 1

    def unsettled(self, tp: Hashable) -> int:
        """How many dispatched offsets of ``tp`` have not settled."""
        window = self._windows.get(tp)
        return 0 if window is None else len(window.unsettled)

    def oldest_unsettled(self, tp: Hashable) -> int | None:
        """The lowest unsettled offset of ``tp`` (the one holding the commit back)."""
        window = self._windows.get(tp)
        return window.offsets[0] if window is not None and window.offsets else None

    def retained(self, tp: Hashable) -> int:
        """How many offsets of ``tp`` the tracker holds: the unsettled ones and
        the settled ones above the committable offset. A crash now makes the
        next owner read exactly these again."""
        window = self._windows.get(tp)
        return 0 if window is None else len(window.offsets)

    def forget(self, tp: Hashable) -> None:
        """Drop ``tp`` (revoked): its next owner starts from the committed offset,
        and so does this tracker if the partition comes back."""
        self._windows.pop(tp, None)
