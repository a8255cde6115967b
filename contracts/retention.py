"""Retention profiles: how long the recorder's topics must keep what they hold.

A profile names a minimum ``retention.ms`` for the topics that make up the
flight record (:func:`governed_topics`: the chain of thought, every agent's
decisions, the checkpoints when the settings have them, the attempt ledger).
``flightrec contracts apply --retention PROFILE`` (or
``FLIGHTREC_RETENTION_PROFILE``) creates missing topics with it and checks the
existing ones against it; the check itself is :func:`retention_problems`, a
pure function of the topics' current configuration.

``local`` asks for nothing (each topic keeps the retention flightrec has always
given it). The regulatory profiles only ever raise retention: ``-1`` (keep
forever) satisfies every profile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flightrec.contracts.errors import ConfigError

if TYPE_CHECKING:
    from flightrec.contracts.settings import Topics

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "RetentionProblem",
    "RetentionProfile",
    "governed_topics",
    "retention_problems",
    "retention_profile",
    "with_retention",
]

_DAY_MS = 86_400_000
RETENTION_MS = "retention.ms"


@dataclass(frozen=True)
class RetentionProfile:
    """A named retention requirement for the flight-record topics."""

    name: str
    min_retention_days: int | None
    """Days every governed topic keeps its records at least (``None``: no requirement)."""
    reason: str
    """Why: the rule the profile implements, for the README and error messages."""

    @property
    def min_retention_ms(self) -> int | None:
        """``min_retention_days`` in milliseconds, as Kafka's ``retention.ms`` counts."""
        return None if self.min_retention_days is None else self.min_retention_days * _DAY_MS

    def satisfied_by(self, retention_ms: int) -> bool:
        """Whether a topic with ``retention_ms`` (``-1``: forever) meets this profile."""
        required = self.min_retention_ms
        return required is None or retention_ms < 0 or retention_ms >= required


LOCAL = RetentionProfile(
    "local",
    None,
    "development: each topic keeps flightrec's own retention (the chain of thought forever, "
    "the attempt ledger a week, other topics the broker's default)",
)
EU_AI_ACT = RetentionProfile(
    "eu-ai-act",
    183,
    "EU AI Act Art. 19 and Art. 26(6): providers and deployers of high-risk AI systems "
    "(e.g. credit scoring) keep the automatically generated logs for at least six months",
)
FINANCIAL_SERVICES = RetentionProfile(
    "financial-services",
    2557,
    "record keeping of credit and investment decisions: typically five to seven years under "
    "financial-services rules (e.g. MiFID II Art. 16(6), SEC 17a-4); seven years covers both, "
    "and the six months of the EU AI Act",
)

PROFILES: Mapping[str, RetentionProfile] = {
    p.name: p for p in (LOCAL, EU_AI_ACT, FINANCIAL_SERVICES)
}
DEFAULT_PROFILE = LOCAL.name


def retention_profile(name: str) -> RetentionProfile:
    """The profile called ``name``; ``ConfigError`` naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            "unknown retention profile", profile=name, known=sorted(PROFILES)
        ) from None


def governed_topics(topics: Topics, decisions: Iterable[str] = ()) -> tuple[str, ...]:
    """The topics a profile governs: the chain of thought, the decisions topics
    (``topics.decisions`` and ``decisions``, every agent's), the checkpoints when
    ``topics`` has them, and the attempt ledger; each once, in that order."""
    names = [topics.cot, topics.decisions, *decisions]
    # Checkpoints are a later topic; settings without them govern the rest.
    checkpoints = getattr(topics, "checkpoints", None)
    if isinstance(checkpoints, str) and checkpoints:
        names.append(checkpoints)
    names.append(topics.attempts)
    return tuple(dict.fromkeys(names))


def with_retention(profile: RetentionProfile, config: Mapping[str, str]) -> dict[str, str]:
    """A topic's ``config`` with its retention raised to the profile's minimum
    (never lowered: ``-1`` or a longer retention stays)."""
    result = dict(config)
    required = profile.min_retention_ms
    current = result.get(RETENTION_MS)
    if required is not None and (current is None or not profile.satisfied_by(int(current))):
        result[RETENTION_MS] = str(required)
    return result


@dataclass(frozen=True)
class RetentionProblem:
    """A governed topic that keeps its records for less than the profile asks."""

    topic: str
    current_ms: int | None
    """The topic's ``retention.ms`` (``None``: the broker did not report one)."""
    required_ms: int

    def describe(self) -> str:
        """``topic: retention 30 days (2592000000 ms), needs at least 183 days``."""
        return (
            f"{self.topic}: retention {_days(self.current_ms)}, "
            f"needs at least {_days(self.required_ms)}"
        )


def _days(ms: int | None) -> str:
    if ms is None:
        return "unknown"
    if ms < 0:
        return "unlimited"
    days = ms / _DAY_MS
    return f"{days:g} day{'' if days == 1 else 's'} ({ms} ms)"


def retention_problems(
    profile: RetentionProfile, configs: Mapping[str, Mapping[str, str]]
) -> list[RetentionProblem]:
    """Every topic of ``configs`` (topic -> its configuration) whose retention is
    below ``profile``'s minimum, in the order given. Pure: the caller reads the
    configuration from the broker."""
    required = profile.min_retention_ms
    if required is None:
        return []
    problems = []
    for topic, config in configs.items():
        raw = config.get(RETENTION_MS)
        try:
            current = None if raw is None else int(raw)
        except ValueError:
            current = None
        if current is None or not profile.satisfied_by(current):
            problems.append(RetentionProblem(topic, current, required))
    return problems
