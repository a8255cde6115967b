"""``RunPipeline``: what happens to one input record, from bytes to confirmed outputs.

decode -> attempt number -> PII tokens -> runner -> recorder (every CoT event)
-> decision record on the agent's decision topic; any failure -> the agent's
DLQ, with context headers. One pipeline serves one agent
(:class:`~flightrec.agents.definition.AgentDefinition`): its contracts, PII
fields, business key and topics; nothing here knows a domain.
``process`` returns only when the broker has confirmed the decision (or the DLQ
record) and every CoT event of the run, so the caller may ack the input then.
The one exception is the run's end, written after its decision is published: if
the recorder refuses it, the input stays decided (logged, never also a dead
letter) and its record reads as interrupted after the signed ``DECISION``.
It never raises for bad input or a failed run: that is what the DLQ is for.

Which failures reach the DLQ: a model or tool failure does not. The runner ends
such a run itself with the agent's fallback ``DECISION`` and ``RUN_FAILED``, and
that decision is published like any other. Everything the runner does not absorb (bytes that
do not decode, an oversized or empty record, a recorder or producer that cannot
confirm, a bug) dead-letters the input. Only when the DLQ write itself is not
confirmed does ``process`` raise: then nothing about the input is durable and
the caller must not ack it.

This module has no Faust and no broker in it: codec, recorder, attempt ledger,
DLQ cipher and producer are protocols (the producer is
:class:`~flightrec.contracts.writer.RecordWriter`; fakes ship in
``flightrec.testing``), so it is tested directly; ``flightrec.agents.worker``
wires it to a Faust stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from flightrec.agents.agent import Agent
from flightrec.agents.context import RunContext, derive_trace_id
from flightrec.agents.definition import AgentDefinition
from flightrec.agents.dispatch import Fence
from flightrec.agents.model import Model
from flightrec.agents.runner import run_agent
from flightrec.contracts.errors import DecodeError, FencedError, RecorderError
from flightrec.contracts.events import (
    TERMINAL_KINDS,
    CotEvent,
    CotEventBase,
    Decision,
    RunFailed,
    SourceRef,
)
from flightrec.contracts.failures import FailureKind
from flightrec.contracts.headers import (
    DECISION_CHAIN_HEAD,
    DECISION_KEY_ID,
    DECISION_SIGNATURE,
    DLQ_ENCRYPTION,
    DLQ_ERROR_CLASS,
    DLQ_ERROR_FIELD,
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_RULE,
    DLQ_ERROR_TIME,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_TRACE_ID,
    TRACEPARENT,
    Header,
    read_traceparent,
    traceparent,
)
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing import SignedHead
from flightrec.contracts.writer import RecordWriter
from flightrec.tools.base import ToolExecutor

__all__ = [
    "AttemptCounter",
    "Guard",
    "PayloadCipher",
    "PipelineResult",
    "RecordCodec",
    "RunPipeline",
    "RunRecorder",
]

log = logging.getLogger(__name__)

# What a RUN_FAILED written in place of another event keeps of it: the run and
# the place in it; not its id, time, chain fields or kind-specific data.
_ENVELOPE_KEPT = frozenset(CotEventBase.model_fields) - {
    "event_id",
    "ts",
    "prev_hash",
    "signing_key_id",
    "signature",
    "gen_ai",
}


class Guard(Protocol):
    """The PII guard the pipeline needs (``flightrec.recorder.pii.PiiGuard``)."""

    def tokenize(
        self, record: BaseModel, fields: Iterable[str] | None = None
    ) -> tuple[dict[str, Any], dict[str, str]]: ...

    def scrub_text(self, text: str, vault: Mapping[str, str]) -> str: ...


class PayloadCipher(Protocol):
    """Encrypts dead-letter payloads (``flightrec.recorder.dlq_cipher.DlqCipher``)."""

    @property
    def algorithm(self) -> str:
        """The cipher's name, as the encryption header spells it."""
        ...

    @property
    def key_id(self) -> str:
        """Which key encrypts, so records stay readable after a key rotation."""
        ...

    def encrypt(self, plaintext: bytes) -> bytes:
        """The encrypted payload."""
        ...


class RunRecorder(Protocol):
    """What the pipeline needs from the recorder: emit events, then await them
    all; the signed chain head a published decision carries; discard a run
    that ended abnormally (``flightrec.recorder.base.Recorder``)."""

    async def emit(
        self, event: CotEvent, vault: Mapping[str, str] | None = None
    ) -> Awaitable[Any]: ...

    def signed_head(self, trace_id: str, attempt: int) -> SignedHead | None: ...

    def discard_run(self, trace_id: str, attempt: int) -> None: ...


class RecordCodec(Protocol):
    """What the pipeline needs from the codec (``flightrec.contracts.codec.Codec``):
    the agent's input decoded and its decision record encoded, by contract name."""

    async def decode(self, contract_name: str, data: bytes) -> Any: ...

    async def encode(self, contract_name: str, value: Any) -> bytes: ...


class AttemptCounter(Protocol):
    """Attempt numbers and confirmed decisions that survive crashes
    (``flightrec.agents.attempts.AttemptLedger``; ``flightrec.testing.MemoryAttemptLedger``
    in tests)."""

    async def prior_decision(
        self, trace_id: str, partition: int, input_offset: int
    ) -> tuple[int, str] | None: ...

    async def begin(self, trace_id: str, partition: int, input_offset: int) -> int: ...

    async def settle(
        self, trace_id: str, partition: int, attempt: int, input_offset: int, outcome: str
    ) -> None: ...


@dataclass(frozen=True)
class PipelineResult:
    """What became of one input record."""

    status: Literal["decided", "dlq"]
    trace_id: str
    attempt: int = 0
    outcome: str | None = None
    key: str | None = None
    error: str | None = None


class RunPipeline:
    """Processes one agent's input records one at a time per caller; safe to call
    concurrently. ``agent`` defaults to ``definition.agent(settings.model_profile)``."""

    def __init__(
        self,
        settings: Settings,
        *,
        definition: AgentDefinition,
        model: Model,
        tools: ToolExecutor,
        codec: RecordCodec,
        recorder: RunRecorder,
        guard: Guard,
        ledger: AttemptCounter,
        producer: RecordWriter,
        dlq_cipher: PayloadCipher,
        clock: Callable[[], datetime] | None = None,
        max_input_bytes: int = 512 * 1024,
        agent: Agent | None = None,
    ) -> None:
        self._settings = settings
        self._definition = definition
        self._agent = agent or definition.agent(settings.model_profile)
        self._topics = definition.topics.resolve(settings)
        self._input_contract, self._decision_contract = (c.name for c in definition.contracts)
        self._model = model
        self._tools = tools
        self._codec = codec
        self._recorder = recorder
        self._guard = guard
        self._ledger = ledger
        self._producer = producer
        self._dlq_cipher = dlq_cipher
        self._clock = clock or (lambda: datetime.now(UTC))
        self._max_input_bytes = max_input_bytes

    async def process(
        self,
        value: bytes | None,
        key: bytes | None,
        source: SourceRef,
        headers: Sequence[tuple[str, bytes]] | None = None,
        fence: Fence | None = None,
    ) -> PipelineResult:
        """Handle one record; returns once every output is confirmed by the broker.

        ``fence`` is the worker's hold on the record's partition: checked before
        the decision and before a dead letter is published, so a run whose
        partition moved to another worker publishes neither (it raises
        :class:`~flightrec.contracts.errors.FencedError`, which is never
        dead-lettered: the new owner runs the record again)."""
        # The run's identity is its input's position; an upstream trace context
        # is only recorded (and linked), or one producer's trace would merge
        # unrelated inputs into one run.
        trace_id = derive_trace_id(source)
        upstream = read_traceparent(headers)
        vault: Mapping[str, str] = {}
        try:
            record = await self._decode(value)
        except Exception as exc:
            return await self._dead_letter(value, key, source, exc, trace_id, vault, fence)
        try:
            return await self._run(record, source, trace_id, upstream, fence)
        except FencedError:
            raise
        except Exception as exc:
            log.exception("run failed for trace %s; sending input to the DLQ", trace_id)
            _, vault = self._guard.tokenize(record, self._definition.pii_fields)
            return await self._dead_letter(value, key, source, exc, trace_id, vault, fence)

    async def _decode(self, value: bytes | None) -> BaseModel:
        if value is None:
            raise DecodeError("record has no value (tombstone)")
        if len(value) > self._max_input_bytes:
            raise DecodeError(
                "record is larger than the accepted maximum",
                size=len(value),
                max_input_bytes=self._max_input_bytes,
            )
        record: BaseModel = await self._codec.decode(self._input_contract, value)
        return record

    async def _run(
        self,
        record: BaseModel,
        source: SourceRef,
        trace_id: str,
        upstream: str | None,
        fence: Fence | None,
    ) -> PipelineResult:
        business_key = self._definition.key_of(record)
        prior = await self._ledger.prior_decision(trace_id, source.partition, source.offset)
        if prior is not None:
            # Decided and confirmed before (the crash came between the decision
            # and the commit): settled from the record, no second run.
            log.info("trace %s was decided by attempt %d; not run again", trace_id, prior[0])
            return PipelineResult(
                status="decided",
                trace_id=trace_id,
                attempt=prior[0],
                outcome=prior[1],
                key=business_key,
            )
        if fence is not None:
            fence.check()  # a revoked partition starts no new attempt
        attempt = await self._ledger.begin(trace_id, source.partition, source.offset)
        try:
            return await self._attempt(record, source, trace_id, upstream, fence, attempt)
        except BaseException:
            # Ended abnormally (a failure the runner did not absorb, a revoked
            # partition, cancellation): the recorder keeps nothing of the run.
            self._recorder.discard_run(trace_id, attempt)
            raise

    async def _attempt(
        self,
        record: BaseModel,
        source: SourceRef,
        trace_id: str,
        upstream: str | None,
        fence: Fence | None,
        attempt: int,
    ) -> PipelineResult:
        """Attempt ``attempt`` of the run, from the PII tokens to the settled ledger."""
        business_key = self._definition.key_of(record)
        input_view, vault = self._guard.tokenize(record, self._definition.pii_fields)
        ctx = RunContext(
            trace_id=trace_id, attempt=attempt, source=source, upstream_traceparent=upstream
        )
        confirmations: list[Awaitable[Any]] = []
        decision: Decision | None = None
        # The terminal event is written only once the decision is published, so
        # the record never shows a complete run whose decision is not out
        # (docs/design.md, "The record agrees with what was published").
        held: CotEvent | None = None
        # Where a failed end goes: in place of the first event not written (the
        # refused one, or the held end), else after the last one written.
        unwritten: CotEvent | None = None
        written: CotEvent | None = None
        recording = False  # a failure now is the recorder's, not the run's
        try:
            async for event in run_agent(
                self._agent,
                model=self._model,
                tools=self._tools,
                ctx=ctx,
                business_key=business_key,
                input_view=input_view,
                pii_vault=vault,
            ):
                if fence is not None:
                    fence.check()  # a revoked partition's run writes no more of its record
                unwritten, recording = event, True
                _raise_refusal(confirmations)
                if decision is not None and event.kind in TERMINAL_KINDS:
                    held = event
                else:
                    confirmations.append(await self._recorder.emit(event, vault))
                    written, unwritten = event, None
                    if isinstance(event, Decision):
                        decision = event
                recording = False
            recording = True
            for confirmation in confirmations:
                await confirmation
        except (FencedError, asyncio.CancelledError):
            raise
        except Exception as exc:
            # An event was refused (a contract rule, the broker) or the run
            # broke: nothing later of it is written but the end that says why.
            why = "the record refused an event" if recording else "the run stopped"
            reason = f"{why}: {exc}"
            if unwritten is not None:
                await self._end_failed(unwritten, vault, reason)
            elif written is not None:
                await self._end_failed(written, vault, reason, seq=written.seq + 1)
            raise
        if decision is None or held is None:  # the runner always decides and ends
            raise RuntimeError(f"run {trace_id} ended without a decision")
        document = json.loads(decision.document_json or "{}")
        out = self._definition.decision_record_model.model_validate(
            {
                **document,
                self._definition.key_field: business_key,
                "trace_id": trace_id,
                "attempt": attempt,
                "agent": self._agent.name,
                "agent_version": self._agent.version,
                "prompt_version": self._agent.prompt_version,
                "model_profile": self._model.info.profile,
                "decided_at": self._clock(),
                "source": source,
            }
        )
        headers: list[Header] = [(TRACEPARENT, traceparent(trace_id, decision.span_id))]
        signed = self._recorder.signed_head(trace_id, attempt)
        if signed is not None:
            headers += [
                (DECISION_CHAIN_HEAD, signed.head.encode()),
                (DECISION_SIGNATURE, signed.signature.encode()),
                (DECISION_KEY_ID, signed.key_id.encode()),
            ]
        try:
            payload = await self._codec.encode(self._decision_contract, out)
            if fence is not None:
                fence.check()
            await self._producer.send_and_wait(
                self._topics.decisions, payload, key=business_key, headers=headers
            )
        except (FencedError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await self._end_failed(held, vault, f"the decision was not published: {exc}")
            raise
        try:
            await (await self._recorder.emit(held, vault))
        except Exception as exc:
            # The decision is out, signed head and all: the input is decided,
            # never also dead-lettered; its record reads as interrupted after
            # the DECISION the published head names.
            log.warning(
                "trace %s: decided, but the record's end was not written: %s", trace_id, exc
            )
        # Confirmed: a re-delivery of this input is settled from the ledger.
        # The decision is out already, so a marker that cannot be written only
        # costs a re-run on re-delivery (a further attempt), never a dead letter.
        try:
            await self._ledger.settle(
                trace_id, source.partition, attempt, source.offset, decision.outcome
            )
        except RecorderError as exc:
            log.warning("trace %s: decided, but the ledger did not record it: %s", trace_id, exc)
        return PipelineResult(
            status="decided",
            trace_id=trace_id,
            attempt=attempt,
            outcome=decision.outcome,
            key=business_key,
        )

    async def _end_failed(
        self,
        template: CotEvent,
        vault: Mapping[str, str],
        reason: str,
        seq: int | None = None,
    ) -> None:
        """End the run's record with RUN_FAILED in place of ``template`` (the
        event that was refused, or the end held back for a decision that was
        not published): same run, same ``seq`` unless ``seq`` is given (the
        place after ``template``, when it was written). Best effort: the input
        goes to the DLQ whatever happens here, and a refused end leaves the run
        reading as interrupted."""
        envelope = template.model_dump(include=set(_ENVELOPE_KEPT))
        ended = RunFailed.model_validate(
            {
                **envelope,
                "seq": template.seq if seq is None else seq,
                "event_id": uuid.uuid4().hex,
                "ts": self._clock(),
                "error_type": FailureKind.UNEXPECTED,
                "reason": self._guard.scrub_text(reason, vault)[:2000],
                "retryable": True,
            }
        )
        try:
            await (await self._recorder.emit(ended, vault))
        except Exception as exc:
            log.warning("trace %s: could not record the failed end: %s", template.trace_id, exc)

    async def _dead_letter(
        self,
        value: bytes | None,
        key: bytes | None,
        source: SourceRef,
        exc: BaseException,
        trace_id: str,
        vault: Mapping[str, str],
        fence: Fence | None = None,
    ) -> PipelineResult:
        message = self._guard.scrub_text(str(exc), vault)[:2000]
        headers: list[Header] = [
            (DLQ_SOURCE_TOPIC, source.topic.encode()),
            (DLQ_SOURCE_PARTITION, str(source.partition).encode()),
            (DLQ_SOURCE_OFFSET, str(source.offset).encode()),
            (DLQ_ERROR_CLASS, type(exc).__name__.encode()),
            (DLQ_ERROR_MESSAGE, message.encode()),
            (DLQ_ERROR_TIME, self._clock().isoformat().encode()),
            (DLQ_TRACE_ID, trace_id.encode()),
            (DLQ_ENCRYPTION, f"{self._dlq_cipher.algorithm};{self._dlq_cipher.key_id}".encode()),
        ]
        for context_key, name in (("rule", DLQ_ERROR_RULE), ("field", DLQ_ERROR_FIELD)):
            detail = getattr(exc, "context", {}).get(context_key)
            if detail:
                headers.append((name, str(detail).encode()))
        started = time.monotonic()
        payload = None if value is None else self._dlq_cipher.encrypt(value)
        if fence is not None:
            fence.check()
        await self._producer.send_and_wait(self._topics.dlq, payload, key=key, headers=headers)
        log.warning(
            "input %s/%d@%d sent to DLQ (%s: %s) in %.1f ms",
            source.topic,
            source.partition,
            source.offset,
            type(exc).__name__,
            message,
            (time.monotonic() - started) * 1000,
        )
        return PipelineResult(
            status="dlq", trace_id=trace_id, error=f"{type(exc).__name__}: {message}"
        )


def _raise_refusal(confirmations: Iterable[Awaitable[Any]]) -> None:
    """Raise the error of an event whose confirmation has already failed: once
    the recorder reports a refusal, no later event of the run is written."""
    for confirmation in confirmations:
        if (
            isinstance(confirmation, asyncio.Future)
            and confirmation.done()
            and not confirmation.cancelled()
        ):
            error = confirmation.exception()
            if error is not None:
                raise error
