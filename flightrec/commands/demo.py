"""``flightrec demo``: run an agent end to end on the local stack."""

from __future__ import annotations

import argparse
from typing import Any

from flightrec.contracts.settings import Settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="start the local stack and a worker, decide N synthetic events, print a summary",
    )
    parser.add_argument(
        "--agent",
        default=None,
        metavar="NAME",
        help="the agent to run: an installed agent's name or package.module:attribute "
        "(default: the loan agent)",
    )
    events = parser.add_mutually_exclusive_group()
    events.add_argument("--events", type=int, default=None, metavar="N", help="default 200")
    events.add_argument(
        "--applications",
        type=int,
        default=None,
        metavar="N",
        help="the loan agent's alias of --events",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    from flightrec.agents.loan_agent import LOAN_AGENT_NAME
    from flightrec.contracts.errors import ConfigError
    from flightrec.demo import demo_main

    agent = args.agent or LOAN_AGENT_NAME
    if args.applications is not None and agent != LOAN_AGENT_NAME:
        raise ConfigError("--applications is the loan agent's alias; use --events N")
    events = args.events if args.events is not None else args.applications
    return demo_main(settings, agent, 200 if events is None else events, args.json)
