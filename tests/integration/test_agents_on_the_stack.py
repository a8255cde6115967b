"""Agents other than the loan agent, on the real stack.

The claims example (``examples/claims``, installed as ``flightrec-claims``) runs
end to end: N claims -> N decisions, its CoT events decode through the
registry with its own subjects, ``replay verify --all`` reproduces every run,
and the PII canaries in its PII fields never appear in clear in ``agent.cot``,
its DLQ, the worker's log or the spans it exports. Then one worker process
hosts the loan agent and the claims agent at once: each gets exactly its own
events, their CoT streams interleave in ``agent.cot``, and every trace verifies.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from flightrec.agents.definition import AgentDefinition
from flightrec.agents.loan_agent import LOAN_AGENT
from flightrec.agents.loan_samples import synthetic_applications
from flightrec.cli import main
from flightrec.contracts.codec import Codec
from flightrec.contracts.events import business_key_of
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.settings import Settings
from flightrec.demo import start_worker_process, stop_worker_process
from flightrec.kafka.topics import agent_topic_specs, ensure_topics
from flightrec_claims.agent import CLAIMS_AGENT
from flightrec_claims.samples import synthetic_claims
from flightrec_claims.tools import CLAIMS_URL_ENV

from recorder_support import read_topic
from test_worker import OtlpReceiver

pytestmark = pytest.mark.integration

# A marker in every PII field of the claims input model.
CLAIM_CANARIES = {
    "policy_number": "POL-424242",
    "claimant_name": "Quintessa Canarywood",
    "claimant_email": "quintessa.canary@example.org",
    "claimant_phone": "+44 7700 900424",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def claims_simulator(tmp_path: Path) -> Iterator[str]:
    """``python -m flightrec_claims.simulator`` on a free loopback port; its URL."""
    port = _free_port()
    log = (tmp_path / "claims-sim.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "flightrec_claims.simulator", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, "the claims simulator exited"
            assert time.monotonic() < deadline, "the claims simulator did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def _prepare(settings: Settings, *definitions: AgentDefinition) -> None:
    contracts = [spec for d in definitions for spec in d.contracts]
    apply_contracts(settings, agent_contracts=contracts)
    extra = []
    for definition in definitions:
        topics = definition.topics.resolve(settings)
        extra += agent_topic_specs(settings, topics.input, topics.decisions, topics.dlq)
    ensure_topics(settings, extra=extra)


def _produce(settings: Settings, definition: AgentDefinition, events: list[Any]) -> None:
    async def encode() -> list[bytes]:
        codec = Codec(settings, contracts=(), agent_contracts=definition.contracts)
        await codec.start()
        try:
            return [await codec.encode(definition.contracts[0].name, e) for e in events]
        finally:
            await codec.close()

    values = asyncio.run(encode())
    producer = Producer(settings.producer_config())
    topic = definition.topics.resolve(settings).input
    for event, value in zip(events, values, strict=True):
        producer.produce(topic, value=value, key=definition.key_of(event))
    assert producer.flush(60) == 0


def _count(settings: Settings, topics: list[str]) -> int:
    consumer = Consumer(settings.consumer_config(group_id=f"count-{uuid.uuid4().hex[:6]}"))
    try:
        total = 0
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=10, cached=False
                )
                total += high - low
        return total
    finally:
        consumer.close()


def _wait_for(
    settings: Settings,
    definitions: list[AgentDefinition],
    expected: int,
    worker: subprocess.Popen[bytes],
    log: Path,
    timeout_s: float = 240.0,
) -> None:
    topics = []
    for definition in definitions:
        resolved = definition.topics.resolve(settings)
        topics += [resolved.decisions, resolved.dlq]
    deadline = time.monotonic() + timeout_s
    while (done := _count(settings, topics)) < expected:
        assert worker.poll() is None, f"worker exited:\n{log.read_text(errors='replace')[-4000:]}"
        assert time.monotonic() < deadline, f"{done}/{expected} outputs after {timeout_s}s"
        time.sleep(0.5)


def _verify_all(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> Any:
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = main(["replay", "verify", "--all", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    return result


def test_the_claims_agent_runs_records_verifies_and_keeps_pii_out(
    settings: Settings,
    claims_simulator: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = settings.model_copy(update={"app_id": f"claims-{uuid.uuid4().hex[:6]}"})
    otlp = OtlpReceiver()
    try:
        settings = settings.model_copy(update={"otlp_endpoint": otlp.url})
        _prepare(settings, CLAIMS_AGENT)
        claims = synthetic_claims(40, seed=11, run_id=uuid.uuid4().hex[:6])
        claims[3] = claims[3].model_copy(update=CLAIM_CANARIES)
        log = tmp_path / "worker.log"
        env = {**os.environ, **settings.to_env(), CLAIMS_URL_ENV: claims_simulator}
        worker = start_worker_process(settings, log, env, agents=("claims-triage",))
        topics = CLAIMS_AGENT.topics.resolve(settings)
        try:
            _produce(settings, CLAIMS_AGENT, claims)
            # Poison in the claims topic goes to the claims DLQ, with its context.
            producer = Producer(settings.producer_config())
            producer.produce(topics.input, value=b"not a claim", key=b"poison-claim")
            assert producer.flush(30) == 0
            _wait_for(settings, [CLAIMS_AGENT], len(claims) + 1, worker, log)
        finally:
            stop_worker_process(worker)

        decisions = read_topic(settings, topics.decisions)
        assert sorted(r.key.decode() for r in decisions) == sorted(c.claim_id for c in claims)
        (dead,) = read_topic(settings, topics.dlq)
        assert dead.key == b"poison-claim"
        assert dead.headers["flightrec-source-topic"] == topics.input.encode()
        assert dead.headers["flightrec-error-class"] == b"DecodeError"

        # Its own subjects in the registry, and its records decode through them.
        client = SchemaRegistryClient(settings.schema_registry_config())
        subjects = set(client.get_subjects())
        assert {f"{topics.input}-value", f"{topics.decisions}-value"} <= subjects

        async def decode() -> tuple[list[Any], list[Any]]:
            codec = Codec(settings, agent_contracts=CLAIMS_AGENT.contracts)
            await codec.start()
            try:
                records = [
                    await codec.decode(CLAIMS_AGENT.contracts[1].name, r.value) for r in decisions
                ]
                cot = read_topic(settings, settings.topics.cot)
                return records, [await codec.decode_cot(r.value) for r in cot]
            finally:
                await codec.close()

        records, events = asyncio.run(decode())
        assert {r.outcome for r in records} <= set(CLAIMS_AGENT.outcomes)
        assert len({r.outcome for r in records}) >= 2, "a mix of outcomes"
        by_trace = {r.trace_id: r for r in records}
        for event in events:
            assert event.agent == "claims-triage"
            assert business_key_of(event) == by_trace[event.trace_id].claim_id
        documents = [json.loads(e.document_json) for e in events if e.kind == "DECISION"]
        assert len(documents) == len(claims)
        assert all({"payout_amount", "fraud_signals"} <= set(d) for d in documents)

        # PII: no canary in clear in the CoT, the DLQ, the worker's log or the spans.
        cot_bytes = b"".join(r.value for r in read_topic(settings, settings.topics.cot))
        cot_bytes += b"".join(
            r.value + b"".join(r.headers.values()) for r in read_topic(settings, topics.dlq)
        )
        spans = json.dumps([str(s) for s in otlp.spans()])
        assert otlp.spans(), "the worker exported spans"
        for value in CLAIM_CANARIES.values():
            assert value.encode() not in cot_bytes, value
            assert value not in log.read_text(errors="replace"), value
            assert value not in spans, value

        result = _verify_all(settings, monkeypatch, capsys)
        assert result["reproduced"] == len(claims), result
        assert result["diverged"] == [] and result["errors"] == []
    finally:
        otlp.close()


def test_one_worker_hosts_two_agents_each_on_its_own_events(
    settings: Settings,
    claims_simulator: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = settings.model_copy(update={"app_id": f"both-{uuid.uuid4().hex[:6]}"})
    _prepare(settings, LOAN_AGENT, CLAIMS_AGENT)
    run = uuid.uuid4().hex[:6]
    applications = synthetic_applications(30, seed=5, run_id=run)
    claims = synthetic_claims(30, seed=5, run_id=run)
    log = tmp_path / "worker.log"
    env = {**os.environ, **settings.to_env(), CLAIMS_URL_ENV: claims_simulator}
    worker = start_worker_process(
        settings, log, env, agents=("loan-underwriter", "flightrec_claims.agent:CLAIMS_AGENT")
    )
    try:
        _produce(settings, LOAN_AGENT, applications)
        _produce(settings, CLAIMS_AGENT, claims)
        _wait_for(settings, [LOAN_AGENT, CLAIMS_AGENT], 60, worker, log)
    finally:
        stop_worker_process(worker)

    loan = LOAN_AGENT.topics.resolve(settings)
    claims_topics = CLAIMS_AGENT.topics.resolve(settings)
    assert sorted(r.key.decode() for r in read_topic(settings, loan.decisions)) == sorted(
        a.application_id for a in applications
    )
    assert sorted(r.key.decode() for r in read_topic(settings, claims_topics.decisions)) == sorted(
        c.claim_id for c in claims
    )
    assert read_topic(settings, loan.dlq) == [] and read_topic(settings, claims_topics.dlq) == []

    # Both agents' events share agent.cot, interleaved within its partitions.
    cot = read_topic(settings, settings.topics.cot)
    agents_by_partition: dict[int, list[str]] = {}
    for record in sorted(cot, key=lambda r: (r.partition, r.offset)):
        subject = record.headers.get("flightrec-subject", b"").decode()
        agent = "claims" if subject.startswith("C-") else "loan"
        agents_by_partition.setdefault(record.partition, []).append(agent)
    switches = sum(
        1
        for agents in agents_by_partition.values()
        for a, b in itertools.pairwise(agents)
        if a != b
    )
    assert {a for agents in agents_by_partition.values() for a in agents} == {"loan", "claims"}
    assert switches >= 2, "the two CoT streams interleave"

    result = _verify_all(settings, monkeypatch, capsys)
    assert result["reproduced"] == 60, result
    assert result["diverged"] == [] and result["errors"] == []
