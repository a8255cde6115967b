"""``flightrec worker``: run the Faust worker hosting one or more agents."""

from __future__ import annotations

import argparse
from typing import Any

from flightrec.contracts.settings import Settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="run the agent worker: each hosted agent consumes its own input topic",
    )
    parser.add_argument(
        "--agent",
        action="append",
        dest="agents",
        metavar="AGENT",
        help="an installed agent's name or package.module:attribute (repeatable; "
        "default: FLIGHTREC_AGENTS, else the loan agent)",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: Faust is heavy and only this command needs it.
    from flightrec.agents.registry import resolve_agents
    from flightrec.agents.worker import run_worker

    return run_worker(settings, resolve_agents(args.agents, settings))
