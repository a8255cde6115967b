"""The ``flightrec`` command.

Sub-commands live in ``flightrec.commands``: each module exposes
``register(subparsers)`` and sets ``handler(args, settings) -> int`` on
its parsers (``parser.set_defaults(handler=...)``).
Exit codes: 0 ok, 1 the operation found a problem (incompatible schema,
divergence), 2 bad input (unknown trace, bad arguments), 3 environment error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

import flightrec.commands
from flightrec.contracts.errors import FlightrecError
from flightrec.contracts.settings import Settings
from flightrec.log_redaction import redact_log_records

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flightrec",
        description="Agent runtime on Kafka with a flight recorder for every decision.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(flightrec.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"flightrec.commands.{info.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Before anything logs: no URL credential in any line, at any verbosity.
    redact_log_records()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # The registry client logs every HTTP request at INFO; that is noise here.
        for chatty in ("httpx", "httpx2", "httpcore"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        settings = Settings.from_env()
        code: int = handler(args, settings)
        return code
    except FlightrecError as exc:
        print(f"flightrec: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
