"""The ``Recorder`` protocol (its in-memory fake is :class:`flightrec.testing.MemoryRecorder`).

A recorder takes the CoT events of runs in the order the runner yields them,
removes any personal data the run's vault knows (defence in depth), seals the
hash chain and writes them durably. ``emit`` returns an awaitable that resolves
when the broker has confirmed that one event (or raises
:class:`~flightrec.contracts.errors.RecorderError`); ``confirm`` waits for every event of
a run emitted so far. Events of one run must be emitted one after another
(never two ``emit`` calls of the same run at once); runs may interleave freely.
A run ends with its terminal event (``RUN_COMPLETED``, ``RUN_FAILED``), or
with ``discard_run`` when it ends abnormally, so nothing of it stays held.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Protocol, runtime_checkable

from flightrec.contracts.events import CotEvent, CotEventBase
from flightrec.contracts.signing import SignedHead

__all__ = ["CotEncoder", "Recorder"]


@runtime_checkable
class CotEncoder(Protocol):
    """What the recorder needs from the codec (``flightrec.contracts.codec.Codec``)."""

    async def encode_cot(self, event: CotEventBase) -> bytes:
        """Confluent-framed Avro bytes of one event (data-contract rules run)."""
        ...


@runtime_checkable
class Recorder(Protocol):
    """Durable, ordered, hash-chained, PII-guarded recording of CoT events."""

    async def start(self) -> None:
        """Open connections; idempotent."""
        ...

    async def emit(
        self, event: CotEvent, vault: Mapping[str, str] | None = None
    ) -> Awaitable[None]:
        """Scrub, seal and queue one event; waits only while the queue is full
        (backpressure). The returned awaitable resolves on broker confirmation."""
        ...

    def signed_head(self, trace_id: str, attempt: int) -> SignedHead | None:
        """The last signed chain head of the run emitted so far (its ``DECISION``
        until the terminal event; None if nothing of it is signed)."""
        ...

    async def confirm(self, trace_id: str, attempt: int) -> None:
        """Wait until every event of the run emitted so far is confirmed;
        raise ``RecorderError`` if any was not."""
        ...

    def discard_run(self, trace_id: str, attempt: int) -> None:
        """Release what is held for a run that ended abnormally (an exception
        left it mid-way: it will emit nothing more, not even a terminal event):
        its chain head, its delivery account and its open spans. Events already
        emitted are still delivered; a later emit of the run starts a new chain."""
        ...

    async def close(self) -> None:
        """Deliver everything queued, then release resources."""
        ...
