"""``flightrec audit (TRACE_ID | --key KEY | --application ID) [--agent NAME]
[--format md|html|json] [--output FILE]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flightrec.contracts.settings import Settings
from flightrec.printable import printable
from flightrec.replay.audit import render_audit
from flightrec.replay.cli import add_key_arguments, run_command
from flightrec.replay.selectors import Selection
from flightrec.replay.service import ReplayService

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``audit``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="audit report of a recorded decision (input, steps, chain, replays)"
    )
    parser.add_argument("trace_id", nargs="?", metavar="TRACE_ID")
    add_key_arguments(parser)
    parser.add_argument("--agent", help="with --key: only this agent's runs")
    parser.add_argument("--format", choices=["md", "html", "json"], default="md")
    parser.add_argument("--output", type=Path, help="write to a file instead of stdout")
    parser.set_defaults(handler=_audit)


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        chosen = [v for v in (args.trace_id, args.key, args.application) if v is not None]
        if len(chosen) != 1:
            raise ValueError("give one of TRACE_ID, --key KEY or --application ID")
        selection = Selection(
            trace_ids=(args.trace_id,) if args.trace_id is not None else (),
            business_key=args.key,
            application_id=args.application,
            agent=args.agent,
        )
        async with ReplayService(settings, publish=False) as service:
            histories = await service.select(selection)
            replays = await service.replay_results(frozenset(h.trace_id for h in histories))
            text = render_audit(
                histories, replays, fmt=args.format, key_fields=_key_fields(service)
            )
        if args.format != "json":
            # JSON escapes control characters itself; a report's lines keep
            # their newlines, recorded text within them loses its controls.
            text = printable(text)
        if args.output is not None:
            args.output.write_text(text, encoding="utf-8")
        else:
            print(text)
        return 0

    return run_command(body)


def _key_fields(service: ReplayService) -> dict[str, str]:
    """Each installed agent's business key field, to label the subject in the report."""
    return {definition.name: definition.key_field for definition in service.catalog.agents}
