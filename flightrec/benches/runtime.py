"""``flightrec bench runtime``: a worker's decisions per second, against LangGraph,
with an instant model and with a model that takes L per call, in one run.

On the local stack (Kafka, the registry and the bureau), with the loan
agent and its offline ``PolicyModel``:

* **instant**: one worker process, end to end: from the first input produced to
  the last decision seen on the decision topic, after a warm-up batch. The peer
  is the same agent shape in LangGraph with its SQLite checkpointer
  (``flightrec.benches._langgraph_peer``), instant model nodes, the same inputs
  and the same in-flight limit, in this process;
* **latency**: the same with every model call taking ``L`` (the worker wraps its
  model in ``DelayedModel`` through ``Settings.model_latency_ms``; the peer's
  model nodes sleep ``L``) and ``K`` runs in flight (the worker's in-flight
  setting, read from ``Settings``; the peer's semaphore). Little's law bounds
  the rate at ``K / run latency``, the run latency being the model calls per
  run (counted from the ``MODEL_CALL`` events the runs recorded) times ``L``;
  efficiency is the measured rate over that bound;
* the worker's resident memory at the end (``VmRSS``).

The peer is the optional ``bench`` extra: without it its figures are null and
the text says why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel

from flightrec.agents.definition import AgentDefinition
from flightrec.agents.loan_agent import LOAN_AGENT_NAME, LOAN_AGENT_TOOLS
from flightrec.contracts.errors import StackError
from flightrec.contracts.settings import Settings
from flightrec.demo import (
    DemoReport,
    prepare_agent,
    run_batch,
    start_worker_process,
    stop_worker_process,
    worker_log_path,
)
from flightrec.stack import Stack

__all__ = [
    "IN_FLIGHT_SETTINGS",
    "InstantFigures",
    "LatencyFigures",
    "RuntimeFigures",
    "in_flight_setting",
    "little_bound",
    "read_rss_mb",
    "register",
    "run_runtime_bench",
]

IN_FLIGHT_SETTINGS = ("max_in_flight", "worker_concurrency")
"""The ``Settings`` fields that bound a worker's runs in flight, preferred first:
the bench sets the first one this flightrec has."""

_WARMUP = 30
_SEED = 42


def in_flight_setting(settings: Settings) -> tuple[str, int]:
    """The worker's in-flight setting: its ``Settings`` field name and value."""
    for name in IN_FLIGHT_SETTINGS:
        if name in type(settings).model_fields:
            return name, int(getattr(settings, name))
    raise StackError("this flightrec has no in-flight setting", known=list(IN_FLIGHT_SETTINGS))


def little_bound(in_flight: int, model_calls_per_run: float, model_latency_ms: float) -> float:
    """Little's law: at most ``in_flight`` runs, each waiting ``model_calls_per_run``
    model calls of ``model_latency_ms``, finish ``K / run latency`` runs a second."""
    run_latency_s = model_calls_per_run * model_latency_ms / 1000
    return in_flight / run_latency_s if run_latency_s > 0 else 0.0


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class InstantFigures:
    """Rates with an instant model: flightrec's decisions and the peer's runs per second."""

    flightrec_dps: float
    peer_rps: float | None

    @property
    def ratio(self) -> float | None:
        """flightrec over the peer (None without a peer)."""
        return _ratio(self.flightrec_dps, self.peer_rps)

    def to_json(self) -> dict[str, Any]:
        return {
            "flightrec_dps": _round(self.flightrec_dps),
            "peer_rps": _round(self.peer_rps),
            "ratio": self.ratio,
        }


@dataclass(frozen=True)
class LatencyFigures:
    """Rates with a model taking ``model_latency_ms`` per call, ``in_flight`` runs at once."""

    model_latency_ms: float
    in_flight: int
    flightrec_dps: float
    model_calls_per_run: float
    peer_rps: float | None

    @property
    def bound_dps(self) -> float:
        """Little's law bound of flightrec's rate (:func:`little_bound`)."""
        return little_bound(self.in_flight, self.model_calls_per_run, self.model_latency_ms)

    @property
    def efficiency(self) -> float | None:
        """Measured over bound."""
        return _ratio(self.flightrec_dps, self.bound_dps)

    @property
    def ratio(self) -> float | None:
        """flightrec over the peer (None without a peer)."""
        return _ratio(self.flightrec_dps, self.peer_rps)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_latency_ms": self.model_latency_ms,
            "in_flight": self.in_flight,
            "flightrec_dps": _round(self.flightrec_dps),
            "bound_dps": _round(self.bound_dps),
            "efficiency": self.efficiency,
            "peer_rps": _round(self.peer_rps),
            "ratio": self.ratio,
        }


@dataclass(frozen=True)
class RuntimeFigures:
    """Everything ``bench runtime`` measured; ``peer_note`` says why a peer figure is missing."""

    events: int
    instant: InstantFigures
    latency: LatencyFigures
    rss_mb: float
    in_flight_name: str = IN_FLIGHT_SETTINGS[-1]
    peer_note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document (keys exactly as documented)."""
        return {
            "instant": self.instant.to_json(),
            "latency": self.latency.to_json(),
            "rss_mb": round(self.rss_mb, 1),
        }

    def render(self) -> str:
        """The figures with a line on what each means."""
        i, lat = self.instant, self.latency
        variable = "FLIGHTREC_" + self.in_flight_name.upper()

        def rate(value: float | None) -> str:
            return "      n/a" if value is None else f"{value:>9,.1f}"

        def times(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f}x"

        lines = [
            f"flightrec bench runtime: loan agent, {self.events} events per measurement",
            "",
            "instant model (offline PolicyModel; peer: LangGraph + AsyncSqliteSaver, no-op model nodes)",
            f"  flightrec   {rate(i.flightrec_dps)} decisions/s   one worker, first input produced"
            " to last decision on the decision topic",
            f"  LangGraph   {rate(i.peer_rps)} runs/s        same inputs, tools and in-flight limit,"
            " a checkpoint per node",
            f"  ratio       {times(i.ratio):>9}             flightrec / LangGraph",
            "",
            f"model latency {lat.model_latency_ms:g} ms per call, {lat.in_flight} in flight"
            f" ({variable} for the worker, a semaphore for the peer)",
            f"  flightrec   {rate(lat.flightrec_dps)} decisions/s",
            f"  bound       {rate(lat.bound_dps)} decisions/s   Little's law: {lat.in_flight} in flight"
            f" / ({lat.model_calls_per_run:.2f} model calls per run x {lat.model_latency_ms:g} ms);"
            " calls counted from the runs' MODEL_CALL events",
            f"  efficiency  {times(lat.efficiency):>9}             measured / bound",
            f"  LangGraph   {rate(lat.peer_rps)} runs/s        model nodes sleep the same latency",
            f"  ratio       {times(lat.ratio):>9}             flightrec / LangGraph",
            "",
            f"worker RSS    {self.rss_mb:>9,.1f} MB          VmRSS of the worker process at the end",
        ]
        if self.peer_note:
            lines += ["", self.peer_note]
        return "\n".join(lines)


def read_rss_mb(pid: int, proc: Path = Path("/proc")) -> float:
    """Resident memory of process ``pid`` in MB (``VmRSS`` of its ``status``)."""
    for line in (proc / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    raise StackError("no VmRSS for the process", pid=pid)


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass(frozen=True)
class _Measured:
    dps: float
    model_calls_per_run: float
    rss_mb: float


def _rate(report: DemoReport) -> float:
    elapsed = report.last_decided - report.first_sent
    return len(report.decisions) / elapsed if elapsed > 0 else 0.0


def _calls_per_run(report: DemoReport) -> float:
    traces = [d.trace_id for d in report.decisions.values()]
    return sum(report.model_calls[t] for t in traces) / len(traces) if traces else 0.0


async def _measure_worker(
    settings: Settings,
    definition: AgentDefinition,
    batches: tuple[list[BaseModel], list[BaseModel]],
    progress: TextIO | None,
    timeout_s: float,
) -> _Measured:
    """Start a worker with ``settings``, run the warm-up batch, then the measured one."""
    log_path = worker_log_path(settings, definition)
    worker = start_worker_process(
        settings, log_path, {**os.environ, **settings.to_env()}, agents=(definition.name,)
    )
    try:
        warmup, measured = batches
        for batch in (warmup, measured):
            report = await run_batch(
                settings,
                definition,
                batch,
                worker,
                log_path,
                progress=progress,
                timeout_s=timeout_s,
            )
        return _Measured(_rate(report), _calls_per_run(report), read_rss_mb(worker.pid))
    finally:
        await asyncio.to_thread(stop_worker_process, worker)


async def _measure_peer(
    settings: Settings,
    definition: AgentDefinition,
    batches: tuple[list[BaseModel], list[BaseModel]],
    *,
    latency_ms: float,
    in_flight: int,
    path: Path,
) -> float:
    """The peer's runs per second on the measured batch, after the warm-up one."""
    from flightrec.benches._langgraph_peer import run_peer
    from flightrec.tools.http import HttpClient
    from flightrec.tools.loan_tools import build_loan_toolset

    async with HttpClient(settings) as http:
        tools = build_loan_toolset(settings, http, allowed=LOAN_AGENT_TOOLS)
        rate = 0.0
        for batch in batches:
            result = await run_peer(
                tools,
                [event.model_dump(mode="json") for event in batch],
                key_field=definition.key_field,
                checkpoint_path=path,
                latency_s=latency_ms / 1000,
                in_flight=in_flight,
                profile=settings.model_profile,
            )
            rate = result["runs_per_s"]
    return rate


async def run_runtime_bench(
    settings: Settings,
    *,
    events: int = 300,
    model_latency_ms: float = 200.0,
    in_flight: int | None = None,
    progress: TextIO | None = sys.stderr,
) -> RuntimeFigures:
    """Measure both modes (see the module docstring); the stack must be up."""
    from flightrec.benches._langgraph_peer import PEER_MISSING, peer_missing

    definition = await prepare_agent(settings, LOAN_AGENT_NAME)
    assert definition.samples is not None  # prepare_agent checked
    samples = definition.samples
    name, default_in_flight = in_flight_setting(settings)
    k = in_flight or default_in_flight
    run_id = uuid.uuid4().hex[:6]

    def batches(mode: str) -> tuple[list[BaseModel], list[BaseModel]]:
        # The same applications in every mode and for both runtimes; fresh keys.
        warm = list(samples(min(_WARMUP, events), seed=_SEED + 1, run_id=f"{run_id}{mode}w"))
        return warm, list(samples(events, seed=_SEED, run_id=f"{run_id}{mode}"))

    no_peer = peer_missing()
    checkpoints = settings.stack_dir / "bench" / f"runtime-{run_id}.sqlite3"
    # Generous: the slowest plausible rate is one run at a time.
    timeout_s = max(600.0, events * 10 * model_latency_ms / 1000 / max(1, k) * 4)
    rates: dict[str, tuple[_Measured, float | None]] = {}
    try:
        for mode, latency in (("i", 0.0), ("l", model_latency_ms)):
            worker_settings = settings.model_copy(update={name: k, "model_latency_ms": latency})
            measured = await _measure_worker(
                worker_settings, definition, batches(mode), progress, timeout_s
            )
            peer = None
            if not no_peer:
                if progress is not None:
                    progress.write(f"  LangGraph peer: {_WARMUP} + {events} runs, {k} at once\n")
                    progress.flush()
                peer = await _measure_peer(
                    settings,
                    definition,
                    batches(mode),
                    latency_ms=latency,
                    in_flight=k,
                    path=checkpoints,
                )
            rates[mode] = (measured, peer)
    finally:
        _remove_database(checkpoints)
    (instant, instant_peer), (slow, slow_peer) = rates["i"], rates["l"]
    return RuntimeFigures(
        events=events,
        instant=InstantFigures(instant.dps, instant_peer),
        latency=LatencyFigures(model_latency_ms, k, slow.dps, slow.model_calls_per_run, slow_peer),
        rss_mb=slow.rss_mb,
        in_flight_name=name,
        peer_note=PEER_MISSING if no_peer else None,
    )


def register(subparsers: Any) -> None:
    """Add ``bench runtime``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "runtime",
        help="decisions/s of a worker vs LangGraph, instant model and model latency L",
    )
    parser.add_argument("--events", type=int, default=300, metavar="N")
    parser.add_argument(
        "--model-latency-ms", type=float, default=200.0, metavar="L", help="per model call"
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=None,
        metavar="K",
        help="runs in flight (default: the worker's in-flight setting)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    # The loan agent's only service is the bureau, which every stack runs: other
    # installed agents' simulators are not started (their ports may be taken).
    Stack(settings).up()
    figures = asyncio.run(
        run_runtime_bench(
            settings,
            events=args.events,
            model_latency_ms=args.model_latency_ms,
            in_flight=args.in_flight,
            progress=None if args.json else sys.stderr,
        )
    )
    if args.json:
        print(json.dumps(figures.to_json()))
    else:
        print(figures.render())
    return 0
