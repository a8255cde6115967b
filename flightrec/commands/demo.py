"""``flightrec demo``: run the loan agent end to end on the local stack."""

from __future__ import annotations

import argparse
from typing import Any

from flightrec.contracts.settings import Settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="start the local stack and a worker, decide N synthetic applications, print a summary",
    )
    parser.add_argument("--applications", type=int, default=200, metavar="N")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    from flightrec.demo import demo_main

    return demo_main(settings, args.applications, args.json)
