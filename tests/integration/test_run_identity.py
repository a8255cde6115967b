"""Run identity on the real stack: applications that arrive with one upstream
``traceparent`` (an instrumented producer stamps one trace on a whole batch)
are separate runs. Each gets the trace of its input's position, attempt 1 and
an intact chain of its own; its RUN_STARTED records the upstream context, and
its agent span links to that context from inside the run's own trace.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from flightrec.agents.context import derive_trace_id
from flightrec.agents.loan_samples import synthetic_applications
from flightrec.contracts.codec import Codec
from flightrec.contracts.events import LoanDecision, SourceRef
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.headers import TRACEPARENT
from flightrec.contracts.settings import Settings
from flightrec.replay.history import RunHistory
from flightrec.replay.reader import CotReader

from recorder_support import read_topic
from test_worker import OtlpReceiver, WorkerHandle, encode_all

pytestmark = pytest.mark.integration

UPSTREAM_TRACE = "0af7651916cd43dd8448eb211c80319c"
UPSTREAM_SPAN = "b7ad6b7169203331"
UPSTREAM = f"00-{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-01"
# Two applications at two offsets of one partition (the second used to become
# attempt 2 of the first), and one on another partition (its events used to
# interleave with theirs into one chain that read as tampered).
PARTITIONS = (0, 0, 1)


async def _read(settings: Settings) -> tuple[list[LoanDecision], list[RunHistory]]:
    codec = Codec(settings, contracts=("cot_event", "loan_decision"))
    await codec.start()
    try:
        records = await asyncio.to_thread(read_topic, settings, settings.topics.decisions)
        decisions = [await codec.decode_decision(r.value) for r in records]
        async with CotReader(settings, codec) as reader:
            return decisions, await reader.read_histories()
    finally:
        await codec.close()


def test_applications_sharing_a_traceparent_are_separate_traces(
    settings: Settings, tmp_path: Path
) -> None:
    apply_contracts(settings)
    otlp = OtlpReceiver()
    try:
        _run_and_check(
            settings.model_copy(
                update={"app_id": f"identity-{uuid.uuid4().hex[:8]}", "otlp_endpoint": otlp.url}
            ),
            otlp,
            tmp_path,
        )
    finally:
        otlp.close()


def _run_and_check(settings: Settings, otlp: OtlpReceiver, tmp_path: Path) -> None:
    apps = synthetic_applications(len(PARTITIONS), seed=5, run_id=uuid.uuid4().hex[:6])
    producer = Producer(settings.producer_config())
    for app, value, partition in zip(apps, encode_all(settings, apps), PARTITIONS, strict=True):
        producer.produce(
            settings.topics.applications,
            value=value,
            key=app.application_id.encode(),
            partition=partition,
            headers=[(TRACEPARENT, UPSTREAM.encode())],
        )
    assert producer.flush(30) == 0
    inputs = {
        r.key.decode(): SourceRef(
            topic=settings.topics.applications,
            partition=r.partition,
            offset=r.offset,
            key=r.key.decode(),
        )
        for r in read_topic(settings, settings.topics.applications)
    }
    assert sorted(s.partition for s in inputs.values()) == sorted(PARTITIONS)

    worker = WorkerHandle(settings, tmp_path / "worker.log")
    try:
        worker.start()
        deadline = time.monotonic() + 180
        while len(read_topic(settings, settings.topics.decisions)) < len(apps):
            assert worker.alive(), worker.log()[-4000:]
            assert time.monotonic() < deadline, "not every application was decided"
            time.sleep(0.5)
        time.sleep(2.0)  # a second attempt, if any, would land now
    finally:
        worker.stop()  # a clean stop flushes the spans
    decisions, histories = asyncio.run(_read(settings))

    # One decision per application, each under the trace of its own input.
    assert sorted(d.application_id for d in decisions) == sorted(inputs)
    for decision in decisions:
        source = inputs[decision.application_id]
        assert decision.trace_id == derive_trace_id(source) != UPSTREAM_TRACE
        assert decision.attempt == 1
    by_trace = {h.trace_id: h for h in histories}
    assert sorted(by_trace) == sorted(d.trace_id for d in decisions)
    for decision in decisions:
        history = by_trace[decision.trace_id]
        assert history.business_key == decision.application_id
        assert [a.number for a in history.attempts] == [1]
        assert history.intact, history.problems()
        started = history.run_started
        assert started is not None
        assert started.source == inputs[decision.application_id]
        assert started.upstream_traceparent == UPSTREAM

    # The spans live in each run's own trace; the agent span links upstream.
    agents = [s for s in otlp.spans() if s.name.startswith("invoke_agent")]
    assert sorted(s.trace_id.hex() for s in agents) == sorted(by_trace)
    for span in agents:
        assert span.parent_span_id == b""
        assert [(link.trace_id.hex(), link.span_id.hex()) for link in span.links] == [
            (UPSTREAM_TRACE, UPSTREAM_SPAN)
        ]
