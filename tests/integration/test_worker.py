"""The Faust worker as a real process on the real stack.

200 good applications give 200 decisions and an empty DLQ; then 20 poison
records (bytes that are not Avro, an unknown schema id, records that bypassed
the data-contract rules, oversized values, tombstones) mixed among 100 good
ones give 100 more decisions and exactly 20 DLQ records carrying their source
coordinates, while the worker keeps running and commits past every input.
"""

from __future__ import annotations

import asyncio
import gzip
import http.server
import io
import json
import os
import random
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from flightrec.agents.loan_agent import LOAN_AGENT
from flightrec.agents.loan_samples import synthetic_applications
from flightrec.agents.worker import consumer_group
from flightrec.contracts import headers as kafka_headers
from flightrec.contracts.avro_mapping import application_to_avro
from flightrec.contracts.codec import Codec
from flightrec.contracts.events import LoanApplication
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.settings import Settings
from flightrec.demo import start_worker_process, stop_worker_process
from flightrec.recorder.dlq_cipher import DlqCipher

from recorder_support import Record, read_topic

pytestmark = pytest.mark.integration

CANARY = "Zebulon Quixotic-Canary"
# A unique marker in every PII-tagged field of the application contract.
CANARY_PII = {
    "applicant_name": CANARY,
    "national_id": "ZQ-CANARY-4242",
    "date_of_birth": "1911-11-11",
    "address": "7 Canary Wharf Quixotic Row",
    "email": "zebulon.canary@example.org",
    "bank_account": "GB00CANARY0000424242",
}


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    """The test's topics, plus a consumer group of its own."""
    apply_contracts(settings)
    return settings.model_copy(update={"app_id": f"flightrec-test-{uuid.uuid4().hex[:8]}"})


class OtlpReceiver:
    """A minimal OTLP/HTTP endpoint: keeps every request body it gets, by path
    (``/v1/traces``, ``/v1/metrics``)."""

    def __init__(self) -> None:
        posted: list[tuple[str, bytes]] = []
        self.posted = posted

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                posted.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def bodies(self) -> list[bytes]:
        """Every body posted, traces and metrics."""
        return [body for _, body in self.posted]

    def metric_names(self) -> set[str]:
        """The names of every metric exported."""
        names: set[str] = set()
        for path, body in self.posted:
            if path.endswith("/v1/metrics"):
                request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                for resource_metrics in request.resource_metrics:
                    for scope_metrics in resource_metrics.scope_metrics:
                        names.update(m.name for m in scope_metrics.metrics)
        return names

    def spans(self) -> list[Any]:
        found = []
        for path, body in self.posted:
            if not path.endswith("/v1/traces"):
                continue
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    found.extend(scope_spans.spans)
        return found

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def worker(worker_settings: Settings, tmp_path: Path, otlp: OtlpReceiver) -> Iterator[WorkerHandle]:
    worker_settings = worker_settings.model_copy(update={"otlp_endpoint": otlp.url})
    handle = WorkerHandle(worker_settings, tmp_path / "worker.log")
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


class WorkerHandle:
    """``flightrec worker`` in a child process, configured by ``settings``."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.env = {**os.environ, **settings.to_env()}
        self.process: Any = None

    def start(self) -> None:
        self.process = start_worker_process(self.settings, self.log_path, self.env)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            stop_worker_process(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def encode_all(settings: Settings, apps: list[LoanApplication]) -> list[bytes]:
    async def run() -> list[bytes]:
        codec = Codec(settings, contracts=("loan_application",))
        await codec.start()
        try:
            return [await codec.encode_application(a) for a in apps]
        finally:
            await codec.close()

    return asyncio.run(run())


def bypassing_rules(settings: Settings, app: LoanApplication) -> bytes:
    """A record in Confluent's wire format that never went through the rules."""
    codec = Codec(settings, contracts=("loan_application",))
    codec.start_sync()
    registered = codec.registered("loan_application")
    assert registered is not None
    schema = fastavro.parse_schema(json.loads(registered.schema.schema_str or ""))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, application_to_avro(app))
    return b"\x00" + struct.pack(">I", registered.schema_id) + body.getvalue()


def produce(settings: Settings, records: list[tuple[bytes, bytes | None]]) -> None:
    producer = Producer(settings.producer_config(**{"message.max.bytes": 2 * 1024 * 1024}))
    for key, value in records:
        producer.produce(settings.topics.applications, value=value, key=key)
        producer.poll(0)
    assert producer.flush(60) == 0


def wait_for_outputs(worker: WorkerHandle, expected: int, timeout_s: float = 300.0) -> None:
    """Until decisions + DLQ records reach ``expected`` (the worker must stay up)."""
    settings = worker.settings
    consumer = Consumer(settings.consumer_config(group_id=f"count-{uuid.uuid4().hex[:6]}"))
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            total = 0
            for topic in (settings.topics.decisions, settings.topics.applications_dlq):
                meta = consumer.list_topics(topic, timeout=10).topics[topic]
                for p in meta.partitions:
                    low, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=10, cached=False
                    )
                    total += high - low
            if total >= expected:
                return
            assert worker.alive(), f"worker exited:\n{worker.log()[-4000:]}"
            assert time.monotonic() < deadline, f"{total}/{expected} outputs after {timeout_s}s"
            time.sleep(0.5)
    finally:
        consumer.close()


def committed_to_end(settings: Settings, timeout_s: float = 60.0) -> bool:
    """Whether the worker's group has committed past every input record."""
    topic = settings.topics.applications
    consumer = Consumer(settings.consumer_config(group_id=consumer_group(settings, LOAN_AGENT)))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lagging = 0
            committed = consumer.committed(
                [TopicPartition(topic, p) for p in partitions], timeout=10
            )
            for tp in committed:
                _, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                if high > 0 and tp.offset < high:
                    lagging += 1
            if lagging == 0:
                return True
            time.sleep(1.0)
        return False
    finally:
        consumer.close()


def header(record: Record, name: str) -> str:
    return record.headers[name].decode()


def test_good_then_poison_inputs_all_settle_and_the_worker_keeps_running(
    worker: WorkerHandle, otlp: OtlpReceiver
) -> None:
    settings = worker.settings
    run = uuid.uuid4().hex[:6]

    # 1. 200 good applications: 200 decisions, DLQ empty.
    first = synthetic_applications(200, seed=7, run_id=f"{run}a")
    produce(
        settings,
        [
            (a.application_id.encode(), v)
            for a, v in zip(first, encode_all(settings, first), strict=True)
        ],
    )
    wait_for_outputs(worker, 200)
    decisions = read_topic(settings, settings.topics.decisions)
    assert sorted(r.key.decode() for r in decisions) == sorted(a.application_id for a in first)
    assert read_topic(settings, settings.topics.applications_dlq) == []

    # 2. 20 poison records among 100 good ones, in random order.
    second = synthetic_applications(100, seed=8, run_id=f"{run}b")
    # A good application whose personal data is a canary: it must be decided,
    # and never appear in clear on any topic or in the worker's log.
    second[1] = second[1].model_copy(update=CANARY_PII)
    good = list(zip(second, encode_all(settings, second), strict=True))
    canary_app = second[0].model_copy(
        update={"applicant_name": CANARY, "application_id": f"poison-{run}-rule"}
    )
    poison: list[tuple[bytes, bytes | None, str]] = []
    for i in range(5):
        poison.append(
            (f"poison-{run}-text-{i}".encode(), f"not avro {CANARY} {i}".encode(), "DecodeError")
        )
    for i in range(3):  # magic byte and an id the registry never issued
        poison.append(
            (
                f"poison-{run}-id-{i}".encode(),
                b"\x00" + struct.pack(">I", 987654 + i) + b"\x02xx",
                "DecodeError",
            )
        )
    for i, update in enumerate(
        [
            {"applicant_age": 16},
            {"amount": -5.0},
            {"currency": "XXX"},
            {"term_months": 999},
            {"applicant_age": 17},
            {"term_months": 1},
        ]
    ):
        app = canary_app.model_copy(update={**update, "application_id": f"poison-{run}-rule-{i}"})
        poison.append(
            (app.application_id.encode(), bypassing_rules(settings, app), "RuleViolationError")
        )
    for i in range(3):  # larger than the worker accepts, smaller than the broker's limit
        poison.append(
            (
                f"poison-{run}-big-{i}".encode(),
                b"\x00\x00\x00\x00\x01" + os.urandom(600 * 1024),
                "DecodeError",
            )
        )
    for i in range(3):
        poison.append((f"poison-{run}-tomb-{i}".encode(), None, "DecodeError"))
    assert len(poison) == 20
    mixed: list[tuple[bytes, bytes | None]] = [(a.application_id.encode(), v) for a, v in good]
    mixed += [(k, v) for k, v, _ in poison]
    random.Random(11).shuffle(mixed)
    produce(settings, mixed)
    wait_for_outputs(worker, 200 + 100 + 20)
    time.sleep(2.0)  # a duplicate, if any, would land now
    assert worker.alive(), worker.log()[-4000:]

    decisions = read_topic(settings, settings.topics.decisions)
    dlq = read_topic(settings, settings.topics.applications_dlq)
    inputs = read_topic(settings, settings.topics.applications)
    assert len(inputs) == 320
    assert len(decisions) == 300 and len(dlq) == 20
    assert len(inputs) == len(decisions) + len(dlq)
    assert {r.key.decode() for r in decisions} == {a.application_id for a in first + second}

    expected_class = {k.decode(): cls for k, _, cls in poison}
    offsets = {(r.partition, r.offset): r for r in inputs}
    cipher = DlqCipher(settings)
    for record in dlq:
        key = record.key.decode()
        assert header(record, kafka_headers.DLQ_ERROR_CLASS) == expected_class[key], key
        assert header(record, kafka_headers.DLQ_SOURCE_TOPIC) == settings.topics.applications
        source = offsets[
            (
                int(header(record, kafka_headers.DLQ_SOURCE_PARTITION)),
                int(header(record, kafka_headers.DLQ_SOURCE_OFFSET)),
            )
        ]
        assert source.key == record.key
        assert header(record, kafka_headers.DLQ_ERROR_MESSAGE)
        assert header(record, kafka_headers.DLQ_ERROR_TIME)
        assert len(header(record, kafka_headers.DLQ_TRACE_ID)) == 32
        if expected_class[key] == "RuleViolationError":
            assert header(record, kafka_headers.DLQ_ERROR_RULE).startswith("application_")
        # The payload is kept, encrypted: PII never sits in the DLQ in clear.
        if source.value:
            assert CANARY.encode() not in record.value
            assert cipher.decrypt(record.value) == source.value
        assert CANARY not in header(record, kafka_headers.DLQ_ERROR_MESSAGE)
    log = worker.log()
    for marker in CANARY_PII.values():
        assert marker not in log, marker
    for topic in (settings.topics.cot, settings.topics.decisions, settings.topics.attempts):
        for record in read_topic(settings, topic):
            blob = record.value + b"".join(record.headers.values())
            for marker in CANARY_PII.values():
                assert marker.encode() not in blob, (topic, marker)

    # Every input, poison included, is acked: the group commits to the end.
    assert committed_to_end(settings)

    # A clean stop flushes the spans to the OTLP endpoint: one trace per run,
    # with the trace id of its CoT events, and no personal data in clear.
    worker.stop()
    assert worker.process.returncode == 0, worker.log()[-4000:]
    spans = otlp.spans()
    decided_traces = {
        h.decode()
        for r in decisions
        for k, h in r.headers.items()
        if k == kafka_headers.TRACEPARENT
    }
    assert len(decided_traces) == 300
    span_traces = {s.trace_id.hex() for s in spans}
    assert {t.split("-")[1] for t in decided_traces} <= span_traces
    assert any(s.name.startswith("invoke_agent") for s in spans)
    # The runtime metrics a user reads, exported over OTLP too.
    assert {"flightrec.worker.runs_in_flight", "flightrec.worker.queued"} <= otlp.metric_names()
    raw_spans = b"".join(otlp.bodies)
    for marker in CANARY_PII.values():
        assert marker.encode() not in raw_spans, marker


def test_a_nan_income_that_bypassed_the_rules_is_dead_lettered_naming_the_rule(
    worker: WorkerHandle,
) -> None:
    """A producer that skips the registered rules writes an application whose
    income is NaN: the worker's codec refuses it on read with the generated
    finite-number rule, it reaches the DLQ naming rule and field, and nothing
    about it is decided; the good application beside it is."""
    settings = worker.settings
    run = uuid.uuid4().hex[:6]
    good, bad = synthetic_applications(2, seed=9, run_id=run)
    bad = bad.model_copy(update={"annual_income": float("nan")})
    produce(
        settings,
        [
            (good.application_id.encode(), encode_all(settings, [good])[0]),
            (bad.application_id.encode(), bypassing_rules(settings, bad)),
        ],
    )
    wait_for_outputs(worker, 2)

    decisions = read_topic(settings, settings.topics.decisions)
    assert [r.key.decode() for r in decisions] == [good.application_id]
    (dead,) = read_topic(settings, settings.topics.applications_dlq)
    assert dead.key.decode() == bad.application_id
    assert header(dead, kafka_headers.DLQ_ERROR_CLASS) == "RuleViolationError"
    assert header(dead, kafka_headers.DLQ_ERROR_RULE) == "application_annual_income_finite"
    assert header(dead, kafka_headers.DLQ_ERROR_FIELD) == "annual_income"
    assert worker.alive(), worker.log()[-4000:]
