"""``flightrec demo``: the main job, end to end on the local stack, for any agent.

Ensures the stack (with the agent's simulator), the contracts (flightrec's and
the agent's) and the topics, starts a worker process hosting the agent,
produces N synthetic input events from a fixed seed (the agent's
``AgentDefinition.samples``), waits until each has a decision or a DLQ record,
and prints a summary (or JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import Consumer, TopicPartition
from pydantic import BaseModel

from flightrec.agents.definition import AgentDefinition
from flightrec.agents.registry import resolve_agents
from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import ConfigError, StackError
from flightrec.contracts.events import TERMINAL_KINDS, RunCompleted
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.headers import COT_KIND, header_value
from flightrec.contracts.settings import Settings
from flightrec.kafka.producer import ConfirmedProducer
from flightrec.kafka.topics import agent_topic_specs, ensure_topics, watermarks
from flightrec.stack import Stack, agent_services

__all__ = [
    "DemoDecision",
    "DemoReport",
    "prepare_agent",
    "run_batch",
    "run_demo",
    "start_worker_process",
    "stop_worker_process",
    "worker_log_path",
]

_MODEL_CALL = "MODEL_CALL"


@dataclass(frozen=True)
class DemoDecision:
    """One decision the demo saw on the agent's decision topic."""

    key: str
    trace_id: str
    outcome: str
    decided_at: datetime


@dataclass
class DemoReport:
    """What the demo observed."""

    agent: str
    events: int
    outcomes: tuple[str, ...] = ()
    decisions: dict[str, DemoDecision] = field(default_factory=dict)
    dlq: int = 0
    runs: dict[str, RunCompleted] = field(default_factory=dict)
    terminal: set[str] = field(default_factory=set)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    # Monotonic times: the first input sent, the last decision seen.
    first_sent: float = 0.0
    last_decided: float = 0.0
    model_calls: Counter[str] = field(default_factory=Counter)
    """MODEL_CALL events seen on the CoT topic, by trace id."""

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "events": self.events,
            "decisions": [
                {"key": d.key, "trace_id": d.trace_id, "outcome": d.outcome}
                for d in sorted(self.decisions.values(), key=lambda d: d.key)
            ],
            "dlq": self.dlq,
        }

    def render(self) -> str:
        outcomes = Counter(d.outcome for d in self.decisions.values())
        labels = list(self.outcomes) + sorted(set(outcomes) - set(self.outcomes))
        steps = [r.steps for r in self.runs.values()]
        tokens_in = sum(r.gen_ai_usage_input_tokens for r in self.runs.values())
        tokens_out = sum(r.gen_ai_usage_output_tokens for r in self.runs.values())
        width = max([9, *(len(label) for label in labels)])
        lines = [
            f"flightrec demo: {self.agent}, {self.events} events in {self.elapsed_s:.1f} s",
            "",
            f"  {'outcome':<{width}}  count",
        ]
        lines += [f"  {o:<{width}} {outcomes.get(o, 0):>6}" for o in labels]
        lines += [f"  {'DLQ':<{width}} {self.dlq:>6}", ""]
        if steps:
            lines.append(
                f"  steps per run      min {min(steps)}  median {statistics.median(steps):g}  max {max(steps)}"
            )
        lines.append(f"  tokens             {tokens_in} in / {tokens_out} out")
        if self.latencies_ms:
            lat = sorted(self.latencies_ms)
            lines.append(
                f"  time to decision   p50 {_pct(lat, 50):.0f} ms  p95 {_pct(lat, 95):.0f} ms"
            )
        lines += ["", "  traces to look at (flightrec trace ID / flightrec audit ID):"]
        ordered = sorted(self.decisions.values(), key=lambda d: d.key)
        trace_width = max([8, *(len(label) for label in labels)])
        for outcome in labels:
            example = next((d for d in ordered if d.outcome == outcome), None)
            if example is not None:
                lines.append(f"    {outcome:<{trace_width}} {example.trace_id}  ({example.key})")
        return "\n".join(lines)


def _pct(values: list[float], p: int) -> float:
    index = max(0, min(len(values) - 1, round(p / 100 * len(values) + 0.5) - 1))
    return values[index]


def start_worker_process(
    settings: Settings,
    log_path: Path,
    env: dict[str, str] | None = None,
    agents: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """Start ``flightrec worker`` (hosting ``agents``: names or ``module:attribute``;
    default the settings' agents) as a child process logging to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "flightrec", "worker"]
    for agent in agents:
        argv += ["--agent", agent]
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env or dict(os.environ),
            start_new_session=True,
        )


def stop_worker_process(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Stop a worker ``start_worker_process`` started: SIGTERM, then kill after ``timeout_s``."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer(settings.consumer_config(group_id=f"flightrec-demo-{uuid.uuid4().hex[:8]}"))
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10)
            for partition in meta.topics[topic].partitions:
                _, high = watermarks(consumer, topic, partition)
                ends[(topic, partition)] = high
        return ends
    finally:
        consumer.close()


async def prepare_agent(settings: Settings, agent: str) -> AgentDefinition:
    """The definition of ``agent`` (a name or ``module:attribute``), its contracts
    applied and its topics created; it must declare samples."""
    (definition,) = resolve_agents([agent], settings)
    if definition.samples is None:
        raise ConfigError(
            f"agent {definition.name} declares no samples; the demo needs them",
            agent=definition.name,
            field="samples",
        )
    await asyncio.to_thread(apply_contracts, settings, agent_contracts=definition.contracts)
    topics = definition.topics.resolve(settings)
    extra = agent_topic_specs(settings, topics.input, topics.decisions, topics.dlq)
    await asyncio.to_thread(ensure_topics, settings, extra=extra)
    return definition


def worker_log_path(settings: Settings, definition: AgentDefinition) -> Path:
    """Where the demo's worker process for ``definition`` logs."""
    return settings.stack_dir / "logs" / f"demo-worker-{definition.name}.log"


async def run_demo(
    settings: Settings,
    *,
    agent: str = "loan-underwriter",
    events: int = 200,
    seed: int = 42,
    progress: TextIO | None = sys.stderr,
    timeout_s: float = 600.0,
    env: dict[str, str] | None = None,
) -> DemoReport:
    """Run the demo of ``agent`` (a name or ``module:attribute``) against
    ``settings`` (stack must be up). Returns the report."""
    definition = await prepare_agent(settings, agent)
    log_path = worker_log_path(settings, definition)
    # The worker gets exactly these settings (topics, ports, keys), whatever
    # the caller's environment says.
    worker = start_worker_process(
        settings,
        log_path,
        env if env is not None else {**os.environ, **settings.to_env()},
        agents=(agent,),
    )
    try:
        assert definition.samples is not None  # prepare_agent checked
        inputs = definition.samples(events, seed=seed, run_id=uuid.uuid4().hex[:8])
        return await run_batch(
            settings,
            definition,
            inputs,
            worker,
            log_path,
            progress=progress,
            timeout_s=timeout_s,
        )
    finally:
        await asyncio.to_thread(stop_worker_process, worker)


async def run_batch(
    settings: Settings,
    definition: AgentDefinition,
    inputs: Sequence[BaseModel],
    worker: subprocess.Popen[bytes],
    worker_log: Path,
    *,
    progress: TextIO | None = sys.stderr,
    timeout_s: float = 600.0,
) -> DemoReport:
    """Produce ``inputs`` to ``definition``'s input topic (each confirmed) and wait
    until every one has a decision or a dead letter, and every decided run its
    terminal CoT event, from the running ``worker``. The report also holds when
    the first input was sent and the last decision seen (``first_sent``,
    ``last_decided``) and the MODEL_CALL events seen per trace."""
    contracts = definition.contracts
    topics = definition.topics.resolve(settings)
    watch = [topics.decisions, topics.dlq, settings.topics.cot]
    start_offsets = await asyncio.to_thread(_end_offsets, settings, watch)
    wanted = {definition.key_of(event) for event in inputs}
    report = DemoReport(agent=definition.name, events=len(inputs), outcomes=definition.outcomes)
    started = time.monotonic()
    producer = ConfirmedProducer(settings.producer_config())
    # An input that breaks a rule is dead-lettered through the same producer.
    codec = Codec(settings, dlq_producer=producer, agent_contracts=contracts)
    await codec.start()
    try:
        submitted: dict[str, float] = {}
        futures = []
        report.first_sent = time.monotonic()
        for event in inputs:
            key = definition.key_of(event)
            payload = await codec.encode(contracts[0].name, event)
            submitted[key] = time.time()
            futures.append(await producer.send(topics.input, payload, key=key))
        for future in futures:
            await future
        await _collect(
            _Watch(settings, definition, codec, start_offsets, wanted, submitted),
            report,
            worker,
            progress,
            started,
            timeout_s,
            worker_log,
        )
    finally:
        await codec.close()  # writes through the producer: close it first
        await producer.close()
    report.elapsed_s = time.monotonic() - started
    return report


@dataclass(frozen=True)
class _Watch:
    """What the demo waits for: the agent's decisions and dead letters, and the
    terminal CoT event of every run it decided."""

    settings: Settings
    definition: AgentDefinition
    codec: Codec
    start: dict[tuple[str, int], int]
    wanted: set[str]
    submitted: dict[str, float]


async def _collect(
    watch: _Watch,
    report: DemoReport,
    worker: subprocess.Popen[bytes],
    progress: TextIO | None,
    started: float,
    timeout_s: float,
    worker_log: Path,
) -> None:
    settings, definition, wanted = watch.settings, watch.definition, watch.wanted
    topics = definition.topics.resolve(settings)
    decision_contract = definition.contracts[1].name
    consumer = Consumer(settings.consumer_config(group_id=f"flightrec-demo-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(t, p, o) for (t, p), o in watch.start.items()])
    traces: set[str] = set()
    last_shown = -1
    interactive = progress is not None and progress.isatty()
    try:
        while True:
            done = len(report.decisions) + report.dlq
            if done >= len(wanted) and traces <= report.terminal:
                return
            if worker.poll() is not None:
                raise StackError(
                    "the demo worker exited early; see its log",
                    exit_code=worker.returncode,
                    log=str(worker_log),
                )
            if time.monotonic() - started > timeout_s:
                raise StackError(
                    "demo timed out waiting for decisions", done=done, expected=len(wanted)
                )
            if progress is not None and done != last_shown:
                if interactive:
                    progress.write(f"\r  decided {done}/{len(wanted)}")
                    progress.flush()
                    last_shown = done
                elif done * 10 // len(wanted) != last_shown * 10 // len(wanted) or last_shown < 0:
                    # A log file gets a line per tenth, not a line per decision.
                    progress.write(f"  decided {done}/{len(wanted)}\n")
                    progress.flush()
                    last_shown = done
            msg = await asyncio.to_thread(consumer.poll, 0.5)
            if msg is None or msg.error() is not None:
                continue
            value = msg.value()
            if msg.topic() == topics.decisions and value:
                record = await watch.codec.decode(decision_contract, value)
                key = str(getattr(record, definition.key_field))
                if key in wanted:
                    decision = DemoDecision(key, record.trace_id, record.outcome, record.decided_at)
                    report.decisions[key] = decision
                    report.last_decided = time.monotonic()
                    traces.add(decision.trace_id)
                    sent = watch.submitted.get(key)
                    if sent is not None:
                        report.latencies_ms.append((decision.decided_at.timestamp() - sent) * 1000)
            elif msg.topic() == topics.dlq:
                key = (msg.key() or b"").decode("utf-8", "replace")
                if key in wanted:
                    report.dlq += 1
            elif msg.topic() == settings.topics.cot and value:
                kind = (header_value(msg.headers(), COT_KIND) or b"").decode()
                if kind == _MODEL_CALL:
                    # CoT events are keyed by trace id: counted without decoding.
                    report.model_calls[(msg.key() or b"").decode()] += 1
                if kind not in TERMINAL_KINDS:
                    continue
                event = await watch.codec.decode_cot(value)
                report.terminal.add(event.trace_id)
                if isinstance(event, RunCompleted):
                    report.runs[event.trace_id] = event
    finally:
        if progress is not None and interactive:
            progress.write("\n")
        consumer.close()


def demo_main(settings: Settings, agent: str, events: int, as_json: bool) -> int:
    """Entry point of ``flightrec demo``: stack up, run, print."""
    (definition,) = resolve_agents([agent], settings)
    Stack(settings, services=agent_services(settings, also=(definition,))).up()
    report = asyncio.run(
        run_demo(
            settings,
            agent=agent,
            events=events,
            progress=None if as_json else sys.stderr,
        )
    )
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        print(report.render())
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0 if len(report.decisions) + report.dlq == events else 1
