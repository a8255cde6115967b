"""Bring the flight-record topics in line with a retention profile.

:func:`apply_retention` creates the governed topics that are missing (with the
profile's retention, :mod:`flightrec.kafka.topics`), reads the configuration
of all of them from the broker and checks it with
:func:`~flightrec.contracts.retention.retention_problems`. A topic that keeps
its records for less than the profile asks is never changed silently: without
``fix`` the call refuses, naming each such topic and its retention; with
``fix`` the retention is raised (``incremental_alter_configs``, so the topic's
other settings stay). No profile lowers a retention.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from flightrec.contracts.errors import ConfigError, StackError
from flightrec.contracts.retention import (
    RetentionProblem,
    RetentionProfile,
    governed_topics,
    retention_problems,
    retention_profile,
)
from flightrec.contracts.settings import Settings
from flightrec.kafka.topics import TopicSpec, ensure_topics, topic_specs

__all__ = ["RetentionReport", "apply_retention"]

_librdkafka_log = logging.getLogger("flightrec.kafka")
_RETENTION_MS = "retention.ms"
_T = TypeVar("_T")


@dataclass(frozen=True)
class RetentionReport:
    """What :func:`apply_retention` found and did."""

    profile: RetentionProfile
    topics: tuple[str, ...]
    """The governed topics, in order."""
    created: tuple[str, ...] = ()
    raised: tuple[RetentionProblem, ...] = ()
    """Topics whose retention was raised (``fix``)."""
    problems: tuple[RetentionProblem, ...] = ()
    """Topics still below the profile (only in a dry run: otherwise refused or raised)."""

    @property
    def ok(self) -> bool:
        """True when every governed topic meets the profile now."""
        return not self.problems

    def render(self) -> str:
        """A human-readable summary, one line per topic that needed something."""
        lines = [f"retention ({self.profile.name}): {len(self.topics)} topics governed"]
        lines += [f"    created {name}" for name in self.created]
        lines += [f"    raised {p.describe()}" for p in self.raised]
        lines += [f"    TOO SHORT {p.describe()}" for p in self.problems]
        return "\n".join(lines)


def apply_retention(
    settings: Settings,
    *,
    decisions: Iterable[TopicSpec] = (),
    fix: bool = False,
    dry_run: bool = False,
    timeout_s: float = 30.0,
) -> RetentionReport:
    """Create and check the governed topics under ``settings.retention_profile``.

    ``decisions`` are the agents' decisions topics (``agent_topic_specs``),
    governed besides the settings' own. A dry run creates and changes nothing
    and reports the problems it finds. Otherwise a topic below the profile
    raises ``ConfigError`` naming every such topic and its retention, unless
    ``fix``: then its retention is raised to the profile's minimum.
    """
    profile = retention_profile(settings.retention_profile)
    extra = list(decisions)
    names = governed_topics(settings.topics, [spec.name for spec in extra])
    if profile.min_retention_ms is None:
        return RetentionReport(profile, names)
    known = topic_specs(settings)
    created: list[str] = []
    if not dry_run:
        created = ensure_topics(
            settings, [name for name in names if name in known], extra=extra, timeout_s=timeout_s
        )
    admin = AdminClient(settings.kafka_client_config(), logger=_librdkafka_log)
    problems = retention_problems(profile, _retention_configs(admin, names, timeout_s))
    if dry_run or not problems:
        return RetentionReport(profile, names, tuple(created), problems=tuple(problems))
    if not fix:
        described = "; ".join(p.describe() for p in problems)
        raise ConfigError(
            f"topics keep their records for less than the {profile.name!r} retention profile "
            f"asks ({described}); nothing was changed: rerun with --fix to raise their "
            f"retention ({profile.reason})",
            topics={p.topic: p.current_ms for p in problems},
        )
    _raise_retention(admin, problems, timeout_s)
    return RetentionReport(profile, names, tuple(created), raised=tuple(problems))


def _retention_configs(
    admin: AdminClient, names: Iterable[str], timeout_s: float
) -> dict[str, Mapping[str, str]]:
    """``retention.ms`` of each existing topic of ``names`` (missing ones are skipped:
    a dry run reports only what exists)."""
    metadata = _answer(lambda: admin.list_topics(timeout=timeout_s), "list topics", timeout_s)
    existing = [name for name in names if name in metadata.topics]
    if not existing:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in existing]
    futures = admin.describe_configs(resources, request_timeout=timeout_s)
    configs: dict[str, Mapping[str, str]] = {}
    for resource, future in futures.items():
        entries = _answer(
            partial(future.result, timeout=timeout_s), f"describe {resource.name}", timeout_s
        )
        entry = entries.get(_RETENTION_MS)
        value = entry.value if entry is not None else None
        configs[resource.name] = {} if value is None else {_RETENTION_MS: str(value)}
    # In the order of ``names``, so the refusal lists topics as governed.
    return {name: configs[name] for name in existing if name in configs}


def _raise_retention(
    admin: AdminClient, problems: Iterable[RetentionProblem], timeout_s: float
) -> None:
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            p.topic,
            incremental_configs=[
                ConfigEntry(
                    _RETENTION_MS,
                    str(p.required_ms),
                    incremental_operation=AlterConfigOpType.SET,
                )
            ],
        )
        for p in problems
    ]
    futures = admin.incremental_alter_configs(resources, request_timeout=timeout_s)
    for resource, future in futures.items():
        _answer(partial(future.result, timeout=timeout_s), f"alter {resource.name}", timeout_s)


def _answer(call: Callable[[], _T], what: str, timeout_s: float) -> _T:
    """``call()``, its Kafka failures as a ``StackError`` saying what was asked."""
    try:
        return call()
    except KafkaException as exc:
        raise StackError(f"Kafka refused to {what}", error=str(exc), retryable=True) from exc
    except concurrent.futures.TimeoutError as exc:
        raise StackError(
            f"Kafka did not answer within {timeout_s:.0f} s ({what})", retryable=True
        ) from exc
