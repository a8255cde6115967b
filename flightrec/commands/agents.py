"""``flightrec agents list [--json]``: the agents this installation can host.

Installed agents come from the ``flightrec.agents`` entry-point group; agents
named by ``module:attribute`` in ``FLIGHTREC_AGENTS`` are listed too. Loading
an agent checks its definition, so a broken one is reported here, by name.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from flightrec.contracts.settings import Settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "agents", help="list the agents this installation can host"
    )
    commands = parser.add_subparsers(dest="agents_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="name, version, topics, outcomes and tools")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(handler=_list)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from flightrec.agents.registry import known_agents, load_agent

    # What the worker hosts by default (resolve_agents): the agents settings.agents
    # names, by name or by module:attribute reference; every one when it is empty.
    hosted = {load_agent(ref).name if ":" in ref else ref for ref in settings.agents}
    rows: list[dict[str, Any]] = []
    for definition in known_agents(settings):
        topics = definition.topics.resolve(settings)
        rows.append(
            {
                "name": definition.name,
                "version": definition.version,
                "description": definition.description,
                "key_field": definition.key_field,
                "topics": {
                    "input": topics.input,
                    "decisions": topics.decisions,
                    "dlq": topics.dlq,
                },
                "outcomes": list(definition.outcomes),
                "fallback_outcome": definition.fallback_outcome,
                "tools": list(definition.tools),
                "prompt_versions": list(definition.prompts),
                "default": not settings.agents or definition.name in hosted,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        mark = " (default)" if row["default"] else ""
        print(f"{row['name']} {row['version']}{mark}: {row['description']}")
        print(f"  key       {row['key_field']}")
        print(f"  topics    {row['topics']['input']} -> {row['topics']['decisions']}")
        print(f"  outcomes  {', '.join(row['outcomes'])} (fallback {row['fallback_outcome']})")
        print(f"  tools     {', '.join(row['tools'])}")
    return 0
