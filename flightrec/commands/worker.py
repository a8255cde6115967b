"""``flightrec worker``: run the Faust worker hosting the loan agent."""

from __future__ import annotations

import argparse
from typing import Any

from flightrec.contracts.settings import Settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker", help="run the agent worker (consumes loan.applications)"
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: Faust is heavy and only this command needs it.
    from flightrec.agents.worker import run_worker

    return run_worker(settings)
