"""The Kafka recorder against the real broker and registry: many concurrent runs
land ordered, gap-free and chained; a delivery failure reaches whoever confirms;
a full queue or a full librdkafka buffer slows emit down but loses nothing; a
contract violation raises at emit and leaves the chain intact; PII canaries
never reach the topic, the logs or the spans."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import RecorderError, RuleViolationError
from flightrec.contracts.events import CotEvent, Decision, RunStarted, Thought, ToolCall, ToolResult
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.headers import COT_KIND, COT_SUBJECT, TRACEPARENT
from flightrec.contracts.settings import Settings
from flightrec.kafka.topics import ensure_topics
from flightrec.recorder.kafka_recorder import KafkaRecorder
from flightrec.recorder.log_filter import PiiLogFilter
from flightrec.recorder.otel import setup_tracing
from flightrec.recorder.pii import PiiGuard
from flightrec.testing.runs import synthetic_run, synthetic_trace_id
from flightrec.testing.samples import sample_application

from recorder_support import check_traces, read_topic, record_runs

pytestmark = pytest.mark.integration


@pytest.fixture
async def codec(settings: Settings) -> AsyncIterator[Codec]:
    await asyncio.to_thread(apply_contracts, settings)
    await asyncio.to_thread(ensure_topics, settings, [settings.topics.cot])
    codec = Codec(settings, contracts=("cot_event",))
    await codec.start()
    yield codec
    await codec.close()


async def decode_all(settings: Settings, codec: Codec) -> list[tuple[object, CotEvent]]:
    records = await asyncio.to_thread(read_topic, settings, settings.topics.cot)
    return [(r, await codec.decode_cot(r.value)) for r in records]


async def test_500_concurrent_runs_are_ordered_gap_free_and_chained(
    settings: Settings, codec: Codec
) -> None:
    salt = uuid.uuid4().hex
    runs = [synthetic_run(synthetic_trace_id(i, salt)) for i in range(500)]
    async with KafkaRecorder(settings, codec) as recorder:
        await record_runs(recorder, runs)
        assert recorder.pending() == 0
    decoded = await decode_all(settings, codec)
    assert len(decoded) == sum(len(r) for r in runs)
    traces = check_traces(decoded, {r[0].trace_id: len(r) for r in runs})  # type: ignore[arg-type]
    # The record is the sealed event: same content as emitted, plus the chain.
    original = runs[0]
    stored = traces[original[0].trace_id]
    assert [
        e.model_copy(update={"prev_hash": o.prev_hash})
        for e, o in zip(stored, original, strict=True)
    ] == original
    partitions = {r.partition for r, _ in decoded}  # type: ignore[attr-defined]
    assert len(partitions) > 1  # keys spread the runs over the partitions
    record, event = decoded[0]
    assert record.headers[TRACEPARENT] == f"00-{event.trace_id}-{event.span_id}-01".encode()  # type: ignore[attr-defined]
    assert record.headers[COT_KIND] == event.kind.encode()  # type: ignore[attr-defined]
    assert record.headers[COT_SUBJECT] == b"app-1"  # type: ignore[attr-defined]


async def test_delivery_failure_surfaces_as_recorder_error(
    settings: Settings, codec: Codec
) -> None:
    # A topic whose broker-side size limit refuses our record: a real delivery error.
    topic = settings.topics.cot + ".small"
    admin = AdminClient(settings.kafka_client_config())
    futures = admin.create_topics(
        [NewTopic(topic, 1, settings.replication_factor, config={"max.message.bytes": "1024"})]
    )
    await asyncio.to_thread(futures[topic].result, 30)
    small = settings.model_copy(
        update={"topics": settings.topics.model_copy(update={"cot": topic})}
    )
    events = synthetic_run(synthetic_trace_id(1, uuid.uuid4().hex))
    thought = next(e for e in events if isinstance(e, Thought))
    big = thought.model_copy(update={"reasoning": "long " * 400})
    async with KafkaRecorder(small, codec) as recorder:
        await (await recorder.emit(events[0]))  # a small record is accepted
        second = await recorder.emit(big)
        with pytest.raises(RecorderError) as info:
            await second
        assert info.value.retryable
        assert info.value.context["trace_id"] == big.trace_id
        with pytest.raises(RecorderError):
            await recorder.confirm(big.trace_id, big.attempt)
        await recorder.confirm(big.trace_id, big.attempt)  # reported once, then cleared


async def test_backpressure_and_full_buffers_lose_nothing(settings: Settings, codec: Codec) -> None:
    tight = settings.model_copy(update={"recorder_queue_size": 2})
    salt = uuid.uuid4().hex
    runs = [synthetic_run(synthetic_trace_id(i, salt)) for i in range(60)]
    # librdkafka's own buffer holds 5 messages: produce() raises BufferError constantly.
    recorder = KafkaRecorder(tight, codec, producer_overrides={"queue.buffering.max.messages": 5})
    async with recorder:
        await record_runs(recorder, runs)
    decoded = await decode_all(settings, codec)
    check_traces(decoded, {r[0].trace_id: len(r) for r in runs})  # type: ignore[arg-type]


async def test_rule_violation_raises_at_emit_and_chain_stays_intact(
    settings: Settings, codec: Codec
) -> None:
    events = synthetic_run(synthetic_trace_id(2, uuid.uuid4().hex))
    index = next(i for i, e in enumerate(events) if isinstance(e, Decision))
    async with KafkaRecorder(settings, codec) as recorder:
        for event in events[:index]:
            await recorder.emit(event)
        with pytest.raises(RuleViolationError):
            await recorder.emit(events[index].model_copy(update={"reasons": []}))
        for event in events[index:]:  # the corrected decision, then completion
            await recorder.emit(event)
        await recorder.confirm(events[0].trace_id, 1)
    decoded = await decode_all(settings, codec)
    check_traces(decoded, {events[0].trace_id: len(events)})  # type: ignore[arg-type]


async def test_pii_canaries_never_reach_topic_logs_or_spans(
    settings: Settings, codec: Codec, caplog: pytest.LogCaptureFixture
) -> None:
    marker = uuid.uuid4().hex
    guard = PiiGuard(settings)
    canaries = {name: f"canary-{marker}-{name}" for name in sorted(guard.fields)}
    application = sample_application(**canaries)
    view, vault = guard.tokenize(application)
    assert set(vault.values()) == set(canaries.values())

    # A run that leaks every value: in the input, model output, reasoning,
    # tool arguments and results (raw and JSON-escaped) and an error message.
    leak = json.dumps(canaries)
    base = synthetic_run(synthetic_trace_id(3, marker))
    leaky: list[CotEvent] = []
    for event in base:
        if isinstance(event, RunStarted):
            event = event.model_copy(update={"input_json": application.model_dump_json()})
        elif isinstance(event, Thought):
            event = event.model_copy(
                update={"reasoning": f"applicant {canaries['applicant_name']}"}
            )
        elif isinstance(event, ToolCall):
            event = event.model_copy(update={"arguments_json": leak})
        elif isinstance(event, ToolResult):
            event = event.model_copy(
                update={"result_json": leak, "error_message": canaries["email"]}
            )
        leaky.append(event)

    exporter = InMemorySpanExporter()
    provider = setup_tracing(
        settings.model_copy(update={"capture_message_content": True}), exporter
    )
    log_filter = PiiLogFilter(guard)
    caplog.handler.addFilter(log_filter)
    try:
        with caplog.at_level(logging.INFO):
            recorder = KafkaRecorder(
                settings.model_copy(update={"capture_message_content": True}),
                codec,
                guard=guard,
                tracer_provider=provider,
            )
            async with recorder:
                for event in leaky:
                    await recorder.emit(event, vault)
                await recorder.confirm(leaky[0].trace_id, 1)
                logging.getLogger("flightrec.test").warning("run for %s done", canaries["email"])
    finally:
        caplog.handler.removeFilter(log_filter)
        provider.shutdown()

    records = await asyncio.to_thread(read_topic, settings, settings.topics.cot)
    raw = b"".join(r.value + r.key + b"".join(r.headers.values()) for r in records)
    assert len(records) == len(leaky)
    assert marker.encode() not in raw
    assert view["national_id"].encode() in raw  # the tokens did get recorded

    spans = exporter.get_finished_spans()
    assert spans
    span_text = "".join(
        json.dumps(dict(s.attributes or {}))
        + "".join(json.dumps(dict(e.attributes or {})) for e in s.events)
        for s in spans
    )
    assert marker not in span_text
    assert view["email"] in span_text  # content capture is on: the token is there

    assert marker not in caplog.text
    assert view["email"] in caplog.text
