"""``flightrec audit (TRACE_ID | --application ID) [--format md|html|json] [--output FILE]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from flightrec.contracts.settings import Settings
from flightrec.replay.audit import render_audit
from flightrec.replay.cli import run_command
from flightrec.replay.service import ReplayService

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``audit``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audit", help="audit report of a recorded decision (input, steps, chain, replays)"
    )
    parser.add_argument("trace_id", nargs="?", metavar="TRACE_ID")
    parser.add_argument("--application", help="every trace of this application id")
    parser.add_argument("--format", choices=["md", "html", "json"], default="md")
    parser.add_argument("--output", type=Path, help="write to a file instead of stdout")
    parser.set_defaults(handler=_audit)


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        if (args.trace_id is None) == (args.application is None):
            raise ValueError("give either a TRACE_ID or --application ID")
        async with ReplayService(settings, publish=False) as service:
            if args.trace_id is not None:
                histories = [await service.lookup(args.trace_id)]
            else:
                histories = await service.index.lookup_application(args.application)
            replays = await service.replay_results(frozenset(h.trace_id for h in histories))
        text = render_audit(histories, replays, fmt=args.format)
        if args.output is not None:
            args.output.write_text(text, encoding="utf-8")
        else:
            print(text)
        return 0

    return run_command(body)
