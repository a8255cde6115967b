"""The ``Recorder`` protocol, and ``MemoryRecorder``, the fake that ships with it.

A recorder takes the CoT events of runs in the order the runner yields them,
removes any personal data the run's vault knows (defence in depth), seals the
hash chain and writes them durably. ``emit`` returns an awaitable that resolves
when the broker has confirmed that one event (or raises
:class:`~contracts.errors.RecorderError`); ``confirm`` waits for every event of
a run emitted so far. Events of one run must be emitted one after another
(never two ``emit`` calls of the same run at once); runs may interleave freely.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Protocol, runtime_checkable

from flightrec.contracts.chain import ChainSealer
from flightrec.contracts.events import CotEvent, CotEventBase
from flightrec.recorder.pii import scrub_event

__all__ = ["CotEncoder", "MemoryRecorder", "Recorder"]


@runtime_checkable
class CotEncoder(Protocol):
    """What the recorder needs from the codec (``contracts.codec.Codec``)."""

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

    async def confirm(self, trace_id: str, attempt: int) -> None:
        """Wait until every event of the run emitted so far is confirmed;
        raise ``RecorderError`` if any was not."""
        ...

    async def close(self) -> None:
        """Deliver everything queued, then release resources."""
        ...


class MemoryRecorder:
    """A recorder that keeps sealed events in a list: for tests and offline runs.

    Same scrubbing and sealing as the Kafka recorder; every event is confirmed
    at once.
    """

    def __init__(self) -> None:
        self.events: list[CotEvent] = []
        self._sealer = ChainSealer()

    async def start(self) -> None:
        """Nothing to open."""

    async def emit(
        self, event: CotEvent, vault: Mapping[str, str] | None = None
    ) -> Awaitable[None]:
        """Record the scrubbed, sealed event; the returned future is already done."""
        sealed = self._sealer.seal(scrub_event(event, vault))
        self.events.append(sealed)
        if sealed.kind in ("RUN_COMPLETED", "RUN_FAILED"):
            self._sealer.forget(sealed.trace_id, sealed.attempt)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def confirm(self, trace_id: str, attempt: int) -> None:
        """Everything is confirmed on emit."""

    async def close(self) -> None:
        """Nothing to release."""
