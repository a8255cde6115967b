"""``flightrec stack fetch | up | down | status``: the local stack without Docker."""

from __future__ import annotations

import argparse
from typing import Any

from flightrec.contracts.settings import Settings
from flightrec.stack import Stack, agent_services

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``stack`` and its four actions to the ``flightrec`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "stack", help="local Kafka (KRaft), embedded schema registry and bureau simulator"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text, handler in (
        ("fetch", "download Kafka's jars from Maven Central (cached)", _fetch),
        ("up", "start what is not running and wait until everything answers", _up),
        ("down", "stop what `stack up` started (data is kept)", _down),
        ("status", "show what runs where", _status),
    ):
        action = actions.add_parser(name, help=help_text)
        action.set_defaults(handler=handler)


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    libs = Stack(settings).fetch()
    jars = len(list(libs.glob("*.jar")))
    print(f"kafka {settings.kafka_version}: {jars} jars in {libs}")
    return 0


def _up(args: argparse.Namespace, settings: Settings) -> int:
    statuses = Stack(settings, services=agent_services(settings)).up()
    for status in statuses:
        print(status.render())
    return 0


def _down(args: argparse.Namespace, settings: Settings) -> int:
    for status in Stack(settings, services=agent_services(settings)).down():
        verb = f"stopped (pid {status.pid})" if status.pid is not None else "was not running"
        print(f"{status.name:<9} {verb}")
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    statuses = Stack(settings, services=agent_services(settings)).status()
    for status in statuses:
        print(status.render())
    # 0 only when every component that exists is up: usable in scripts.
    return 0 if all(s.up or s.note.startswith("module") for s in statuses) else 1
