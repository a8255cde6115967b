"""``flightrec trace TRACE_ID`` (timeline of one run) and ``flightrec traces`` (list)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from flightrec.contracts.chain import Integrity
from flightrec.contracts.settings import Settings
from flightrec.printable import printable_lines
from flightrec.replay.audit import event_summary
from flightrec.replay.cli import run_command, time_arg
from flightrec.replay.history import RunHistory
from flightrec.replay.selectors import parse_time
from flightrec.replay.service import ReplayService

__all__ = ["register", "render_timeline"]


def register(subparsers: Any) -> None:
    """Add ``trace`` and ``traces``."""
    trace: argparse.ArgumentParser = subparsers.add_parser(
        "trace", help="timeline of one recorded run (by trace id)"
    )
    trace.add_argument("trace_id", metavar="TRACE_ID")
    trace.add_argument("--json", action="store_true", help="machine-readable output")
    trace.set_defaults(handler=_trace)

    traces: argparse.ArgumentParser = subparsers.add_parser(
        "traces", help="list recorded runs (from the trace index)"
    )
    traces.add_argument("--agent", help="only this agent")
    traces.add_argument("--since", type=time_arg, help="ISO time or duration ago (2h)")
    traces.add_argument("--until", type=time_arg, help="ISO time or duration ago")
    traces.add_argument(
        "--outcome", help="an outcome label (APPROVE, PAY...), FAILED, COMPLETED or RUNNING"
    )
    traces.add_argument("--limit", type=int, default=None)
    traces.add_argument("--json", action="store_true", help="machine-readable output")
    traces.set_defaults(handler=_traces)


def render_timeline(history: RunHistory) -> str:
    """Readable timeline: every attempt, every event, integrity verdicts."""
    first = history.first_event
    lines = [
        f"trace {history.trace_id}  key {history.business_key or '-'}  "
        f"agent {first.agent} {first.agent_version} (prompt {first.prompt_version})",
        f"decision of record: {history.outcome or 'none'}  record: {Integrity.of(history.intact)}",
    ]
    started = history.run_started
    if started is not None and started.upstream_traceparent:
        lines.append(f"upstream trace context: {started.upstream_traceparent}")
    chosen = history.authoritative
    for attempt in history.attempts:
        tag = "authoritative" if attempt is chosen else attempt.status.lower()
        lines.append(
            f"attempt {attempt.number} [{attempt.status}, {tag}] chain {attempt.chain.describe()}"
        )
        lines.extend(f"  ! {p}" for p in attempt.problems())
        for event in attempt.events:
            lines.append(
                f"  {event.seq:>3} step {event.step:>2}  {event.ts.isoformat()}  "
                f"{event.kind:<13} {event_summary(event)}"
            )
    # Every line holds recorded text (keys, versions, summaries, problems).
    return printable_lines(lines)


def _history_json(history: RunHistory) -> dict[str, Any]:
    chosen = history.authoritative
    return {
        "trace_id": history.trace_id,
        "business_key": history.business_key,
        "agent": history.first_event.agent,
        "outcome": history.outcome,
        "intact": history.intact,
        "authoritative_attempt": chosen.number if chosen is not None else None,
        "attempts": [
            {
                "attempt": a.number,
                "status": a.status,
                "chain": a.chain.describe(),
                "problems": a.problems(),
                "events": [e.model_dump(mode="json") for e in a.events],
            }
            for a in history.attempts
        ],
    }


def _trace(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        async with ReplayService(settings, publish=False) as service:
            history = await service.lookup(args.trace_id)
        if args.json:
            print(json.dumps(_history_json(history), indent=2, ensure_ascii=False))
        else:
            print(render_timeline(history))
        return 0

    return run_command(body)


def _traces(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        async with ReplayService(settings, publish=False) as service:
            await service.index.update()
            rows = service.index.list_sync(
                agent=args.agent,
                since=parse_time(args.since) if args.since else None,
                until=parse_time(args.until) if args.until else None,
                outcome=args.outcome,
                limit=args.limit,
            )
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "trace_id": r.trace_id,
                            "business_key": r.business_key,
                            "agent": r.agent,
                            "agent_version": r.agent_version,
                            "prompt_version": r.prompt_version,
                            "first_ts": r.first_ts.isoformat() if r.first_ts else None,
                            "last_ts": r.last_ts.isoformat() if r.last_ts else None,
                            "outcome": r.outcome,
                            "status": r.status,
                            "events": r.events,
                        }
                        for r in rows
                    ],
                    indent=2,
                )
            )
            return 0
        for r in rows:
            when = r.first_ts.isoformat(timespec="seconds") if r.first_ts else "-"
            row = (
                f"{r.trace_id}  {when}  {r.business_key or '-':<24} {r.agent or '-'} "
                f"{r.agent_version or ''}  {r.outcome or '-':<8} {r.status or '-':<9} {r.events} events"
            )
            print(printable_lines([row]))
        print(f"{len(rows)} traces")
        return 0

    return run_command(body)
