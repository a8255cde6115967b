"""``flightrec contracts``: governance of the Avro schemas and data-contract rules.

``apply [--dry-run]`` prints the plan (per subject: new subject / new version /
unchanged, the compatibility verdict under the level apply sets), then, unless
``--dry-run`` or any subject is incompatible (then nothing is written),
registers what changed and prints the result;
``check`` is the CI gate (exit 1 when a local schema is incompatible with the
registry's latest); ``show SUBJECT [--version N]`` prints a registered version.

``apply`` and ``check`` govern flightrec's own contracts and those of every
agent the installation knows (its input and decision topics), or of the
agents named with ``--agent``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from flightrec.contracts.errors import ConfigError, SchemaIncompatibleError
from flightrec.contracts.retention import PROFILES, retention_profile
from flightrec.contracts.settings import Settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``contracts apply|check|show`` to the CLI."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "contracts", help="register and check the Avro schemas and data-contract rules"
    )
    commands = parser.add_subparsers(dest="contracts_command", metavar="ACTION", required=True)

    apply = commands.add_parser("apply", help="print the plan, then register schemas and rules")
    apply.add_argument("--dry-run", action="store_true", help="print the plan only")
    apply.add_argument("--schema-dir", type=Path, default=None, help="directory of .avsc files")
    apply.add_argument(
        "--retention",
        choices=sorted(PROFILES),
        default=None,
        metavar="PROFILE",
        help="retention profile of the flight-record topics: "
        f"{', '.join(sorted(PROFILES))} (default: FLIGHTREC_RETENTION_PROFILE, else local)",
    )
    apply.add_argument(
        "--fix",
        action="store_true",
        help="raise the retention of existing topics that keep records for less than the profile",
    )
    _agent_option(apply)
    apply.set_defaults(handler=_apply)

    check = commands.add_parser("check", help="exit 1 when a local schema is incompatible")
    check.add_argument("--schema-dir", type=Path, default=None, help="directory of .avsc files")
    _agent_option(check)
    check.set_defaults(handler=_check)

    show = commands.add_parser("show", help="print a registered schema version with its rules")
    show.add_argument("subject")
    show.add_argument("--version", type=int, default=None, metavar="N")
    show.set_defaults(handler=_show)


def _agent_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agent",
        action="append",
        dest="agents",
        metavar="AGENT",
        help="govern this agent's contracts (name or package.module:attribute; repeatable; "
        "default: every installed agent and FLIGHTREC_AGENTS)",
    )


def _agents(args: argparse.Namespace, settings: Settings) -> Any:
    from flightrec.agents.registry import known_agents, resolve_agents

    return resolve_agents(args.agents, settings) if args.agents else known_agents(settings)


def _agent_contracts(args: argparse.Namespace, settings: Settings) -> Any:
    return _agents(args, settings).contracts()


def _retention(args: argparse.Namespace, settings: Settings) -> bool:
    """Bring the flight-record topics in line with the retention profile (a no-op
    for ``local``); print what was found and done. False: a topic falls short."""
    from flightrec.kafka.retention import apply_retention
    from flightrec.kafka.topics import agent_topic_specs

    if retention_profile(settings.retention_profile).min_retention_ms is None:
        return True
    decisions = []
    for definition in _agents(args, settings):
        topics = definition.topics.resolve(settings)
        specs = agent_topic_specs(settings, topics.input, topics.decisions, topics.dlq)
        decisions += [spec for spec in specs if spec.name == topics.decisions]
    try:
        report = apply_retention(settings, decisions=decisions, fix=args.fix, dry_run=args.dry_run)
    except ConfigError as exc:
        print(f"flightrec: {exc.message}")
        return False
    print(report.render(), flush=True)
    return report.ok


def _quiet_http() -> None:
    # The registry client's HTTP library logs every request at INFO; the plan is the output.
    for name in ("httpx", "httpx2"):
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            logging.getLogger(name).setLevel(logging.WARNING)


def _apply(args: argparse.Namespace, settings: Settings) -> int:
    from flightrec.contracts.pii_keys import pii_keyring_for

    # Before any connection: the contracts' DLQ rules pseudonymise under the PII
    # key, and a shared registry is no place for the public development key.
    pii_keyring_for(settings)
    _quiet_http()
    from flightrec.contracts.governance import Plan, apply_contracts

    if args.retention is not None:
        settings = settings.model_copy(update={"retention_profile": args.retention})
    # Topics first: a refused retention registers nothing.
    retention_ok = _retention(args, settings)
    if not retention_ok and not args.dry_run:
        return 1

    def show(plan: Plan) -> None:
        # The plan comes first, before anything is written.
        print(plan.render(), flush=True)

    try:
        result = apply_contracts(
            settings,
            schema_dir=args.schema_dir,
            dry_run=args.dry_run,
            on_plan=show,
            agent_contracts=_agent_contracts(args, settings),
        )
    except SchemaIncompatibleError as exc:
        # The plan above already shows the registry's messages for each subject.
        subjects = exc.context.get("subjects") or [exc.context.get("subject")]
        print(f"flightrec: {exc.message}: {', '.join(map(str, subjects))}")
        if "already_applied" in exc.context:
            # Refused at registration although the plan said compatible.
            for message in exc.context.get("messages") or ():
                print(f"    {message}")
            done = ", ".join(exc.context["already_applied"]) or "nothing"
            print(f"flightrec: applied before the refusal: {done}")
        return 1
    if args.dry_run:
        return 0 if result.ok and retention_ok else 1
    print(result.render())
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from flightrec.contracts.governance import check_contracts

    _quiet_http()
    plan = check_contracts(
        settings, schema_dir=args.schema_dir, agent_contracts=_agent_contracts(args, settings)
    )
    print(plan.render())
    return 0 if plan.ok else 1


def _show(args: argparse.Namespace, settings: Settings) -> int:
    from flightrec.contracts.governance import show_subject

    _quiet_http()
    print(json.dumps(show_subject(settings, args.subject, args.version), indent=2))
    return 0
