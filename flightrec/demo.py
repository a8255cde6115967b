"""``flightrec demo``: the main job, end to end on the local stack.

Ensures the stack and the contracts, starts a worker process, produces N
synthetic applications from a fixed seed, waits until each has a decision or a
DLQ record, and prints a summary (or JSON).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka import Consumer, TopicPartition

from flightrec.agents.loan_samples import synthetic_applications
from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import StackError
from flightrec.contracts.events import TERMINAL_KINDS, LoanDecision, RunCompleted
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.headers import COT_KIND, header_value
from flightrec.contracts.settings import Settings
from flightrec.kafka.producer import ConfirmedProducer
from flightrec.kafka.topics import ensure_topics, watermarks
from flightrec.stack import Stack

__all__ = ["DemoReport", "run_demo", "start_worker_process"]


@dataclass
class DemoReport:
    """What the demo observed."""

    applications: int
    decisions: dict[str, LoanDecision] = field(default_factory=dict)
    dlq: int = 0
    runs: dict[str, RunCompleted] = field(default_factory=dict)
    terminal: set[str] = field(default_factory=set)
    latencies_ms: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "applications": self.applications,
            "decisions": [
                {"application_id": d.application_id, "trace_id": d.trace_id, "outcome": d.outcome}
                for d in sorted(self.decisions.values(), key=lambda d: d.application_id)
            ],
            "dlq": self.dlq,
        }

    def render(self) -> str:
        outcomes = Counter(d.outcome for d in self.decisions.values())
        steps = [r.steps for r in self.runs.values()]
        tokens_in = sum(r.gen_ai_usage_input_tokens for r in self.runs.values())
        tokens_out = sum(r.gen_ai_usage_output_tokens for r in self.runs.values())
        lines = [
            f"flightrec demo: {self.applications} applications in {self.elapsed_s:.1f} s",
            "",
            "  outcome    count",
        ]
        lines += [f"  {o:<9} {outcomes.get(o, 0):>6}" for o in ("APPROVE", "DECLINE", "REFER")]
        lines += [f"  {'DLQ':<9} {self.dlq:>6}", ""]
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
        for outcome in ("APPROVE", "DECLINE", "REFER"):
            example = next(
                (
                    d
                    for d in sorted(self.decisions.values(), key=lambda d: d.application_id)
                    if d.outcome == outcome
                ),
                None,
            )
            if example is not None:
                lines.append(f"    {outcome:<8} {example.trace_id}  ({example.application_id})")
        return "\n".join(lines)


def _pct(values: list[float], p: int) -> float:
    index = max(0, min(len(values) - 1, round(p / 100 * len(values) + 0.5) - 1))
    return values[index]


def start_worker_process(
    settings: Settings, log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``flightrec worker`` as a child process logging to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "flightrec", "worker"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env or dict(os.environ),
            start_new_session=True,
        )


def stop_worker_process(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
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


async def run_demo(
    settings: Settings,
    *,
    applications: int = 200,
    seed: int = 42,
    progress: TextIO | None = sys.stderr,
    timeout_s: float = 600.0,
    env: dict[str, str] | None = None,
) -> DemoReport:
    """Run the demo against ``settings`` (stack must be up). Returns the report."""
    await asyncio.to_thread(apply_contracts, settings)
    await asyncio.to_thread(ensure_topics, settings)
    topics = settings.topics
    watch = [topics.decisions, topics.applications_dlq, topics.cot]
    start_offsets = await asyncio.to_thread(_end_offsets, settings, watch)
    run_id = uuid.uuid4().hex[:8]
    apps = synthetic_applications(applications, seed=seed, run_id=run_id)
    wanted = {a.application_id for a in apps}
    log_path = settings.stack_dir / "logs" / "demo-worker.log"
    # The worker gets exactly these settings (topics, ports, keys), whatever
    # the caller's environment says.
    worker = start_worker_process(
        settings, log_path, env if env is not None else {**os.environ, **settings.to_env()}
    )
    report = DemoReport(applications=applications)
    started = time.monotonic()
    producer = ConfirmedProducer(settings.producer_config())
    # An application that breaks a rule is dead-lettered through the same producer.
    codec = Codec(settings, dlq_producer=producer)
    await codec.start()
    try:
        submitted: dict[str, float] = {}
        futures = []
        for app in apps:
            payload = await codec.encode_application(app)
            submitted[app.application_id] = time.time()
            futures.append(
                await producer.send(topics.applications, payload, key=app.application_id)
            )
        for future in futures:
            await future
        await _collect(
            settings,
            codec,
            start_offsets,
            wanted,
            report,
            submitted,
            worker,
            progress,
            started,
            timeout_s,
            log_path,
        )
    finally:
        await codec.close()  # writes through the producer: close it first
        await producer.close()
        await asyncio.to_thread(stop_worker_process, worker)
    report.elapsed_s = time.monotonic() - started
    return report


async def _collect(
    settings: Settings,
    codec: Codec,
    start: dict[tuple[str, int], int],
    wanted: set[str],
    report: DemoReport,
    submitted: dict[str, float],
    worker: subprocess.Popen[bytes],
    progress: TextIO | None,
    started: float,
    timeout_s: float,
    worker_log: Path,
) -> None:
    topics = settings.topics
    consumer = Consumer(settings.consumer_config(group_id=f"flightrec-demo-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(t, p, o) for (t, p), o in start.items()])
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
                decision = await codec.decode_decision(value)
                if decision.application_id in wanted:
                    report.decisions[decision.application_id] = decision
                    traces.add(decision.trace_id)
                    sent = submitted.get(decision.application_id)
                    if sent is not None:
                        report.latencies_ms.append((decision.decided_at.timestamp() - sent) * 1000)
            elif msg.topic() == topics.applications_dlq:
                key = (msg.key() or b"").decode("utf-8", "replace")
                if key in wanted:
                    report.dlq += 1
            elif (
                msg.topic() == topics.cot
                and value
                and (header_value(msg.headers(), COT_KIND) or b"").decode() in TERMINAL_KINDS
            ):
                event = await codec.decode_cot(value)
                report.terminal.add(event.trace_id)
                if isinstance(event, RunCompleted):
                    report.runs[event.trace_id] = event
    finally:
        if progress is not None and interactive:
            progress.write("\n")
        consumer.close()


def demo_main(settings: Settings, applications: int, as_json: bool) -> int:
    """Entry point of ``flightrec demo``: stack up, run, print."""
    Stack(settings).up()
    report = asyncio.run(
        run_demo(settings, applications=applications, progress=None if as_json else sys.stderr)
    )
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        print(report.render())
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0 if len(report.decisions) + report.dlq == applications else 1
