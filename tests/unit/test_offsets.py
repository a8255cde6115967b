"""``OffsetTracker``: the committable offset never passes an unsettled record,
never goes back, and a restart from it re-reads everything not settled."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightrec.agents.offsets import OffsetTracker

TP = ("loan.applications", 0)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[int], list[tuple[str, int]], set[int]]:
    """Offsets with gaps, an interleaving of dispatches and settles in random
    order, and the offsets whose run fails (never settles)."""
    start = draw(st.integers(0, 1_000))
    gaps = draw(st.lists(st.integers(1, 4), max_size=30))
    offsets = [start]
    for gap in gaps:
        offsets.append(offsets[-1] + gap)
    failing = set(draw(st.sets(st.sampled_from(offsets), max_size=3)))
    ops: list[tuple[str, int]] = []
    waiting: list[int] = []  # dispatched, not settled, not failing
    pending = list(offsets)
    while pending or waiting:
        if pending and (not waiting or draw(st.booleans())):
            offset = pending.pop(0)
            ops.append(("dispatch", offset))
            if offset not in failing:
                waiting.append(offset)
        else:
            ops.append(("settle", waiting.pop(draw(st.integers(0, len(waiting) - 1)))))
    return offsets, ops, failing


@settings(max_examples=300, deadline=None)
@given(histories(), st.data())
def test_committable_is_safe_monotonic_and_loses_nothing_on_a_crash(
    history: tuple[list[int], list[tuple[str, int]], set[int]], data: st.DataObject
) -> None:
    offsets, ops, failing = history
    crash_at = data.draw(st.integers(0, len(ops)), label="crash after this many steps")
    tracker = OffsetTracker()
    dispatched: list[int] = []
    unsettled: set[int] = set()
    last_committable: int | None = None
    for step, (op, offset) in enumerate(ops):
        if step == crash_at:
            break
        if op == "dispatch":
            tracker.dispatched(TP, offset)
            dispatched.append(offset)
            unsettled.add(offset)
        else:
            tracker.settled(TP, offset)
            unsettled.discard(offset)
        committable = tracker.committable(TP)
        assert committable is not None
        if unsettled:
            assert committable == min(unsettled)  # never past an unsettled offset
        else:
            assert committable == dispatched[-1] + 1
        assert last_committable is None or committable >= last_committable
        last_committable = committable
        assert tracker.unsettled(TP) == len(unsettled)
        assert tracker.oldest_unsettled(TP) == (min(unsettled) if unsettled else None)
        # Memory: only the window from the lowest unsettled offset is held.
        assert tracker.retained(TP) == len([o for o in dispatched if o >= committable])

    # "Crash": the next owner reads from the committed offset. Every record not
    # settled (failed, running, or never dispatched) is read again.
    committed = tracker.committable(TP)
    resume_from = offsets[0] if committed is None else committed
    settled = set(dispatched) - unsettled
    assert {o for o in offsets if o not in settled} <= {o for o in offsets if o >= resume_from}

    # The restart settles everything (the failures are fixed): the commit ends after the last.
    restarted = OffsetTracker()
    for offset in (o for o in offsets if o >= resume_from):
        restarted.dispatched(TP, offset)
    for offset in reversed([o for o in offsets if o >= resume_from]):
        restarted.settled(TP, offset)
    assert restarted.committable(TP) == (offsets[-1] + 1 if resume_from <= offsets[-1] else None)
    if not failing and crash_at >= len(ops):
        assert committed == offsets[-1] + 1  # everything settled: last + 1


def test_gaps_are_not_offsets() -> None:
    tracker = OffsetTracker()
    assert tracker.committable(TP) is None
    for offset in (5, 9, 10, 14):  # compaction and transaction markers leave holes
        tracker.dispatched(TP, offset)
    assert tracker.committable(TP) == 5
    tracker.settled(TP, 9)
    assert tracker.committable(TP) == 5  # 5 still holds it back
    tracker.settled(TP, 5)
    assert tracker.committable(TP) == 10  # skips the hole 6..8, stops at unsettled 10
    tracker.settled(TP, 14)
    tracker.settled(TP, 10)
    assert tracker.committable(TP) == 15
    assert tracker.retained(TP) == 0 and tracker.oldest_unsettled(TP) is None


def test_partitions_are_independent_and_forget_starts_over() -> None:
    tracker = OffsetTracker()
    other = ("loan.applications", 1)
    tracker.dispatched(TP, 3)
    tracker.dispatched(other, 100)
    tracker.settled(other, 100)
    assert (tracker.committable(TP), tracker.committable(other)) == (3, 101)
    tracker.forget(TP)  # revoked
    assert tracker.committable(TP) is None and tracker.unsettled(TP) == 0
    tracker.dispatched(TP, 1)  # assigned again, re-read from an older commit
    assert tracker.committable(TP) == 1


def test_misuse_is_refused() -> None:
    tracker = OffsetTracker()
    tracker.dispatched(TP, 7)
    with pytest.raises(ValueError, match="does not follow"):
        tracker.dispatched(TP, 7)
    with pytest.raises(ValueError, match="not dispatched"):
        tracker.settled(TP, 8)
    tracker.settled(TP, 7)
    with pytest.raises(ValueError, match="not dispatched"):
        tracker.settled(TP, 7)  # settled twice


def test_a_broken_window_is_caught_where_the_offset_is_computed() -> None:
    """The guard is a real check (kept under ``python -O``), in ``committable``."""
    tracker = OffsetTracker()
    for offset in (1, 2, 3):
        tracker.dispatched(TP, offset)
    window = tracker._windows[TP]
    window.offsets.popleft()  # as if pruning had dropped unsettled offset 1
    with pytest.raises(AssertionError, match="passes the unsettled offset 1"):
        tracker.committable(TP)
    window.offsets.appendleft(1)
    window.returned = 9  # as if it had once answered a higher offset
    with pytest.raises(AssertionError, match="went back"):
        tracker.committable(TP)
