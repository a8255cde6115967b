"""``flightrec replay verify|reevaluate``: re-run recorded decisions from the log.

Exit codes: 0 all reproduced (verify) / done (reevaluate); 1 something diverged
or a record is not intact; 2 unknown trace or bad selection.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from flightrec.contracts.settings import Settings
from flightrec.replay.cli import ProgressBar, add_key_arguments, run_command, time_arg
from flightrec.replay.replayer import (
    Candidate,
    ReevaluateOutcome,
    VerifyOutcome,
    summarize_transitions,
)
from flightrec.replay.selectors import Selection, parse_time
from flightrec.replay.service import ReplayService

__all__ = ["reevaluate_report", "register", "verify_report"]


def _selectors(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace_ids", nargs="*", metavar="TRACE_ID")
    add_key_arguments(parser)
    parser.add_argument("--all", action="store_true", help="every trace in the log")
    parser.add_argument("--since", type=time_arg, help="ISO time or duration ago (2h)")
    parser.add_argument("--until", type=time_arg, help="ISO time or duration ago")
    parser.add_argument("--agent", help="only this agent (narrows --key, --all or a time range)")
    parser.add_argument("--agent-version", help="only this agent version")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--no-publish", action="store_true", help="do not write results to the replays topic"
    )


def register(subparsers: Any) -> None:
    """Add ``replay verify`` and ``replay reevaluate``."""
    replay: argparse.ArgumentParser = subparsers.add_parser(
        "replay", help="verify or re-evaluate recorded decisions"
    )
    commands = replay.add_subparsers(dest="replay_command", metavar="COMMAND")
    verify = commands.add_parser("verify", help="re-run offline; prove the record reproduces")
    _selectors(verify)
    verify.set_defaults(handler=_verify)
    reevaluate = commands.add_parser(
        "reevaluate", help="re-run under a candidate model profile / prompt / agent version"
    )
    _selectors(reevaluate)
    reevaluate.add_argument("--model-profile", required=True, help="e.g. strict")
    reevaluate.add_argument("--prompt-version")
    reevaluate.add_argument("--agent-version-candidate", dest="candidate_agent_version")
    reevaluate.add_argument(
        "--live-tools", action="store_true", help="call real tools when the recording has no answer"
    )
    reevaluate.set_defaults(handler=_reevaluate)


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(
        trace_ids=tuple(args.trace_ids),
        business_key=args.key,
        application_id=args.application,
        all=args.all,
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
        agent=args.agent,
        agent_version=args.agent_version,
    )


def verify_report(outcomes: Sequence[VerifyOutcome]) -> dict[str, Any]:
    """The JSON document of a verify run."""
    return {
        "total": len(outcomes),
        "reproduced": sum(o.status == "REPRODUCED" for o in outcomes),
        "diverged": [
            {"trace_id": o.trace_id, "step": o.step, "expected": o.expected, "actual": o.actual}
            for o in outcomes
            if o.status == "DIVERGED"
        ],
        "aborted": [o.trace_id for o in outcomes if o.status == "ABORTED"],
        "errors": [
            {"trace_id": o.trace_id, "step": o.step, "message": o.message}
            for o in outcomes
            if o.status == "ERROR"
        ],
    }


def reevaluate_report(outcomes: Sequence[ReevaluateOutcome]) -> dict[str, Any]:
    """The JSON document of a re-evaluation run."""
    return {
        "total": len(outcomes),
        "changed": sum(o.status == "CHANGED" for o in outcomes),
        "transitions": dict(summarize_transitions(outcomes)),
        "traces": [
            {
                "trace_id": o.trace_id,
                "old": o.old,
                "new": o.new,
                "first_diff_step": o.first_diff_step,
                "status": o.status,
            }
            for o in outcomes
        ],
        "errors": [
            {"trace_id": o.trace_id, "message": o.message} for o in outcomes if o.status == "ERROR"
        ],
    }


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        selection = _selection(args)
        async with ReplayService(settings, publish=not args.no_publish) as service:
            histories = await service.select(selection)
            bar = ProgressBar("verify")
            outcomes = await service.verify(histories, on_done=bar)
            bar.finish()
        report = verify_report(outcomes)
        if args.json:
            print(json.dumps(report, indent=2, ensure_ascii=False))
        else:
            for o in outcomes:
                line = f"{o.trace_id}  {o.status}"
                if o.status in {"DIVERGED", "ERROR"}:
                    line += f" at step {o.step}: {o.message}"
                    if o.expected or o.actual:
                        line += f"\n    expected: {o.expected}\n    actual:   {o.actual}"
                elif o.status == "ABORTED":
                    line += f" ({o.message})"
                print(line)
            print(
                f"{report['reproduced']}/{report['total']} reproduced, "
                f"{len(report['diverged'])} diverged, {len(report['errors'])} not intact/errors, "
                f"{len(report['aborted'])} aborted"
            )
        return 1 if report["diverged"] or report["errors"] else 0

    return run_command(body)


def _reevaluate(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        selection = _selection(args)
        candidate = Candidate(
            model_profile=args.model_profile,
            prompt_version=args.prompt_version,
            agent_version=args.candidate_agent_version,
            live_tools=args.live_tools,
        )
        async with ReplayService(settings, publish=not args.no_publish) as service:
            histories = await service.select(selection)
            bar = ProgressBar("reevaluate")
            outcomes = await service.reevaluate(histories, candidate, on_done=bar)
            bar.finish()
        report = reevaluate_report(outcomes)
        if args.json:
            print(json.dumps(report, indent=2, ensure_ascii=False))
        else:
            for o in outcomes:
                step = (
                    ""
                    if o.first_diff_step is None
                    else f" (first difference at step {o.first_diff_step})"
                )
                line = f"{o.trace_id}  {o.old or '-'} -> {o.new or '-'}  {o.status}{step}"
                if o.status == "ERROR":
                    line += f": {o.message}"
                print(line)
            print(f"{report['changed']}/{report['total']} changed, {len(report['errors'])} errors")
            for transition, count in report["transitions"].items():
                print(f"  {transition}: {count}")
        # Decisions that changed are the answer, not a failure; a trace that
        # could not be re-evaluated at all is.
        return 1 if report["errors"] else 0

    return run_command(body)
