"""A run that ends abnormally leaves nothing behind in the recorder.

When an exception leaves a run mid-way (no terminal event will come), the
pipeline dead-letters the input and discards the run: the recorder drops its
chain head (the next emit of that run starts from the genesis hash instead of
linking to a run that never finished), ends its open spans as errors, and drops
its delivery account once the events it did emit are settled. Without this,
every such run kept a head, an account and an open span for the life of the
worker. The recorders are the real ones: ``KafkaRecorder`` with the real
librdkafka client and a broker that never answers, and ``MemoryRecorder``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from flightrec.agents.dispatch import Fence
from flightrec.agents.model import ModelRequest, ModelTurn
from flightrec.agents.steps import ThoughtStep
from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import ContractError, FencedError, RecorderError
from flightrec.contracts.events import GENESIS_HASH, CotEvent, CotEventBase, SourceRef
from flightrec.contracts.settings import Settings
from flightrec.recorder.kafka_recorder import KafkaRecorder
from flightrec.recorder.otel import setup_tracing
from flightrec.recorder.tracing import SpanRecorder
from flightrec.testing import (
    MemoryRecorder,
    ScriptedModel,
    offline_registry,
)
from flightrec.testing.runs import synthetic_run, synthetic_trace_id
from flightrec.testing.samples import sample_application

from run_support import decide, make_pipeline

SOURCE = SourceRef(topic="loan.applications", partition=2, offset=41, key="app-1")
STEPS = [
    ThoughtStep(type="thought", reasoning="look at the income"),
    decide(),
]


class Encoder:
    """Stands in for the codec: keeps what it was asked to encode (the sealed
    events), and refuses THOUGHT events, as a contract violation would."""

    def __init__(self) -> None:
        self.sealed: list[CotEvent] = []

    async def encode_cot(self, event: CotEventBase) -> bytes:
        self.sealed.append(cast(CotEvent, event))
        if event.kind == "THOUGHT":
            raise ContractError("a CoT rule refused the event", rule="test")
        return event.model_dump_json().encode()


@pytest.fixture
async def codec() -> AsyncIterator[Codec]:
    settings = Settings()
    codec = Codec(settings, offline_registry(settings))
    await codec.start()
    yield codec
    await codec.close()


async def test_a_run_that_raised_mid_way_leaves_no_head_account_or_open_span(
    unreachable_broker: Settings, codec: Codec
) -> None:
    exporter = InMemorySpanExporter()
    provider = setup_tracing(unreachable_broker, exporter)
    spans = SpanRecorder(unreachable_broker, provider)
    encoder = Encoder()
    recorder = KafkaRecorder(
        unreachable_broker, encoder, spans=spans, producer_overrides={"log_level": 0}
    )
    await recorder.start()
    try:
        rig = make_pipeline(
            unreachable_broker, codec, model=ScriptedModel(STEPS), recorder=recorder
        )
        value = await codec.encode_application(sample_application())

        result = await rig.process(value, b"app-1", SOURCE)

        # The recorder refused the THOUGHT: the input is dead-lettered, mid-run.
        assert result.status == "dlq" and (result.error or "").startswith("ContractError")
        # The refused THOUGHT is replaced by the RUN_FAILED that says why
        # (docs/design.md, "The record agrees with what was published").
        kinds = [e.kind for e in encoder.sealed]
        assert kinds == ["RUN_STARTED", "MODEL_CALL", "THOUGHT", "RUN_FAILED"]
        # No span stays open; the run's span ended as an error.
        assert len(spans) == 0
        (agent_span,) = [
            s for s in exporter.get_finished_spans() if (s.name or "").startswith("invoke_agent")
        ]
        assert agent_span.status.status_code == StatusCode.ERROR
        # Ended by the recorded RUN_FAILED (the refusal is an unexpected failure).
        assert dict(agent_span.attributes or {})["error.type"] == "UnexpectedError"
        # The failed end waited for its confirmation (the unreachable broker
        # refused it too): nothing of the run is outstanding or kept.
        assert recorder.pending() == 0
        # No chain head: the run's events emitted again start a new chain.
        await recorder.emit(encoder.sealed[0])
        assert encoder.sealed[-1].kind == "RUN_STARTED"
        assert encoder.sealed[-1].prev_hash == GENESIS_HASH
    finally:
        await asyncio.wait_for(recorder.close(timeout_s=0.2), 10)
    provider.shutdown()


async def test_a_discarded_runs_account_goes_once_its_events_are_settled(
    unreachable_broker: Settings,
) -> None:
    events = synthetic_run(synthetic_trace_id(3, "discarded"))
    recorder = KafkaRecorder(unreachable_broker, Encoder(), producer_overrides={"log_level": 0})
    await recorder.start()
    confirmations = [await recorder.emit(e) for e in events[:2]]
    recorder.discard_run(events[0].trace_id, events[0].attempt)
    assert recorder.pending() == 2  # still delivered (or failed), not forgotten

    await asyncio.wait_for(recorder.close(timeout_s=0.2), 10)

    assert recorder.pending() == 0
    for confirmation in confirmations:
        with pytest.raises(RecorderError):
            await confirmation
    # Undelivered, yet nothing is kept for a run nobody will confirm.
    await recorder.confirm(events[0].trace_id, events[0].attempt)


class RevokedWhileAnswering(ScriptedModel):
    """Revokes the run's partition when asked for its second step."""

    def __init__(self, fence: Fence) -> None:
        super().__init__(STEPS)
        self._fence = fence

    async def next_step(self, request: ModelRequest) -> ModelTurn:
        if self.remaining == 1:
            self._fence.release()
        return await super().next_step(request)


async def test_a_revoked_run_is_discarded_too(codec: Codec) -> None:
    settings = Settings()
    recorder = DiscardsSeen()
    fence = Fence("loan.applications/2", generation=1)
    rig = make_pipeline(settings, codec, model=RevokedWhileAnswering(fence), recorder=recorder)
    value = await codec.encode_application(sample_application())

    with pytest.raises(FencedError):
        await rig.process(value, b"app-1", SOURCE, fence=fence)

    started = recorder.events[0]
    assert [e.kind for e in recorder.events][-1] == "THOUGHT"  # stopped mid-run
    assert recorder.discarded == [(started.trace_id, 1)]
    await recorder.emit(started)  # no head left: a new chain, not a link to the THOUGHT
    assert recorder.events[-1].prev_hash == GENESIS_HASH


class DiscardsSeen(MemoryRecorder):
    """A memory recorder that also lists the runs it was told to discard."""

    def __init__(self) -> None:
        super().__init__()
        self.discarded: list[tuple[str, int]] = []

    def discard_run(self, trace_id: str, attempt: int) -> None:
        self.discarded.append((trace_id, attempt))
        super().discard_run(trace_id, attempt)
