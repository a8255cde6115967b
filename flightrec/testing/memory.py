"""In-memory stand-ins for the broker-backed parts of the pipeline.

``MemoryProducer`` implements :class:`flightrec.contracts.writer.RecordWriter` (what
``flightrec.kafka.producer.ConfirmedProducer`` offers) and ``MemoryAttemptLedger``
implements :class:`flightrec.agents.pipeline.AttemptCounter` (what
``flightrec.agents.attempts.AttemptLedger`` offers), so ``RunPipeline`` runs its real
code in unit tests without Kafka. The producer can be told that the "broker"
does not confirm a topic; it then fails exactly as the real one does, with a
retryable :class:`~flightrec.contracts.errors.RecorderError`.

    producer = MemoryProducer()
    producer.unconfirmed.add(settings.topics.applications_dlq)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Unpack

from flightrec.contracts.errors import RecorderError
from flightrec.contracts.events import TERMINAL_KINDS, CotEvent
from flightrec.contracts.headers import Header, header_value
from flightrec.contracts.signing import Keyring, RecordSigner, SignedHead
from flightrec.contracts.writer import SendOptions
from flightrec.recorder.sealing import ScrubbingSealer

__all__ = ["MemoryAttemptLedger", "MemoryProducer", "MemoryRecorder", "SentMessage"]


@dataclass(frozen=True)
class SentMessage:
    """One message the fake broker confirmed."""

    topic: str
    value: bytes | None
    key: bytes | str | None
    headers: tuple[Header, ...]
    partition: int | None = None

    def header(self, name: str) -> bytes | None:
        """The value of header ``name`` (the first one), or None."""
        return header_value(self.headers, name)


class MemoryProducer:
    """Keeps every confirmed message in ``sent``, in send order.

    Sends to a topic in ``unconfirmed`` raise ``RecorderError`` and keep
    nothing, as a broker that never acknowledged the write would.
    """

    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self.unconfirmed: set[str] = set()

    async def send_and_wait(
        self, topic: str, value: bytes | None, **options: Unpack[SendOptions]
    ) -> SentMessage:
        """Confirm (keep) the message at once, or fail as an unconfirmed delivery."""
        if topic in self.unconfirmed:
            # Same class, fields and retry hint as ConfirmedProducer's delivery failure.
            raise RecorderError(
                "broker did not confirm delivery",
                topic=topic,
                kafka_error="MemoryProducer: topic marked unconfirmed",
                retryable=True,
            )
        message = SentMessage(
            topic,
            value,
            options.get("key"),
            tuple(options.get("headers") or ()),
            options.get("partition"),
        )
        self.sent.append(message)
        return message

    def on(self, topic: str) -> list[SentMessage]:
        """The confirmed messages of ``topic``, in send order."""
        return [m for m in self.sent if m.topic == topic]


class MemoryAttemptLedger:
    """Counts attempts per trace id in a dict (one process, no crash survival)."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.decided: dict[str, tuple[int, str]] = {}

    async def prior_decision(
        self, trace_id: str, partition: int, input_offset: int
    ) -> tuple[int, str] | None:
        """``(attempt, outcome)`` of the confirmed decision of ``trace_id``, if any."""
        return self.decided.get(trace_id)

    async def begin(self, trace_id: str, partition: int, input_offset: int) -> int:
        """The next attempt number of ``trace_id`` (1 for a first run)."""
        attempt = self.attempts.get(trace_id, 0) + 1
        self.attempts[trace_id] = attempt
        self.decided.pop(trace_id, None)
        return attempt

    async def settle(
        self, trace_id: str, partition: int, attempt: int, input_offset: int, outcome: str
    ) -> None:
        """Remember that ``attempt`` decided ``outcome``."""
        self.decided[trace_id] = (attempt, outcome)


class MemoryRecorder:
    """A recorder that keeps sealed events in a list: for tests and offline runs.

    Same scrubbing, sealing and signing as the Kafka recorder (a
    :class:`~flightrec.recorder.sealing.ScrubbingSealer`), by default with a
    fresh key (``signer``; ``keyring`` trusts it); every event is confirmed at
    once.
    """

    def __init__(self, signer: RecordSigner | None = None) -> None:
        self.events: list[CotEvent] = []
        self.signer = signer if signer is not None else RecordSigner.generate()
        self.keyring = Keyring([self.signer.public_key])
        self._sealer = ScrubbingSealer(signer=self.signer)

    async def start(self) -> None:
        """Nothing to open."""

    async def emit(
        self, event: CotEvent, vault: Mapping[str, str] | None = None
    ) -> Awaitable[None]:
        """Record the scrubbed, sealed event; the returned future is already done."""
        sealed = self._sealer.seal_scrubbed(event, vault)
        self.events.append(sealed)
        if sealed.kind in TERMINAL_KINDS:
            self._sealer.forget(sealed.trace_id, sealed.attempt)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def signed_head(self, trace_id: str, attempt: int) -> SignedHead | None:
        """The last signed chain head of the run emitted so far."""
        return self._sealer.last_signed(trace_id, attempt)

    async def confirm(self, trace_id: str, attempt: int) -> None:
        """Everything is confirmed on emit."""

    def discard_run(self, trace_id: str, attempt: int) -> None:
        """Drop the chain head of a run that ended abnormally (all else is kept
        in ``events``, as a broker would keep what was written)."""
        self._sealer.forget(trace_id, attempt)

    async def close(self) -> None:
        """Nothing to release."""
