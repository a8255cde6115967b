"""Retention profiles: the pure check, the retention topics are created with,
and the setting that chooses the profile."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from flightrec.contracts.errors import ConfigError
from flightrec.contracts.retention import (
    PROFILES,
    RetentionProblem,
    governed_topics,
    retention_problems,
    retention_profile,
    with_retention,
)
from flightrec.contracts.settings import Settings, Topics
from flightrec.kafka import retention as kafka_retention
from flightrec.kafka.retention import apply_retention
from flightrec.kafka.topics import agent_topic_specs, topic_specs

DAY_MS = 86_400_000
EU = retention_profile("eu-ai-act")


def test_the_profiles_and_their_minimums() -> None:
    assert retention_profile("local").min_retention_ms is None
    assert EU.min_retention_ms == 183 * DAY_MS
    assert retention_profile("financial-services").min_retention_days == 2557
    assert "Art. 19" in EU.reason and "26(6)" in EU.reason
    assert set(PROFILES) == {"local", "eu-ai-act", "financial-services"}


def test_an_unknown_profile_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        retention_profile("forever")
    assert caught.value.context["known"] == sorted(PROFILES)


def test_problems_name_each_short_topic_with_its_retention() -> None:
    configs = {
        "agent.cot": {"retention.ms": "-1"},
        "loan.decisions": {"retention.ms": str(30 * DAY_MS)},
        "agent.attempts": {"retention.ms": str(183 * DAY_MS)},
        "claims.decisions": {"retention.ms": str(7 * DAY_MS)},
        "unknown.retention": {},
    }
    problems = retention_problems(EU, configs)
    assert problems == [
        RetentionProblem("loan.decisions", 30 * DAY_MS, 183 * DAY_MS),
        RetentionProblem("claims.decisions", 7 * DAY_MS, 183 * DAY_MS),
        RetentionProblem("unknown.retention", None, 183 * DAY_MS),
    ]
    assert problems[0].describe() == (
        f"loan.decisions: retention 30 days ({30 * DAY_MS} ms), "
        f"needs at least 183 days ({183 * DAY_MS} ms)"
    )


def test_the_local_profile_finds_no_problem() -> None:
    assert retention_problems(retention_profile("local"), {"t": {"retention.ms": "1"}}) == []


def test_with_retention_raises_and_never_lowers() -> None:
    required = str(183 * DAY_MS)
    assert with_retention(EU, {})["retention.ms"] == required
    assert with_retention(EU, {"retention.ms": str(DAY_MS)})["retention.ms"] == required
    assert with_retention(EU, {"retention.ms": "-1"})["retention.ms"] == "-1"
    longer = str(400 * DAY_MS)
    assert with_retention(EU, {"retention.ms": longer, "a": "b"}) == {
        "retention.ms": longer,
        "a": "b",
    }
    assert with_retention(retention_profile("local"), {}) == {}


def test_governed_topics_are_the_flight_record_topics_with_every_agents_decisions() -> None:
    assert governed_topics(Topics(), ["claims.decisions", "loan.decisions"]) == (
        "agent.cot",
        "loan.decisions",
        "claims.decisions",
        "agent.cot.checkpoints",
        "agent.attempts",
    )


def test_topics_are_created_with_the_profiles_retention() -> None:
    settings = Settings(retention_profile="eu-ai-act")
    specs = topic_specs(settings)
    required = str(183 * DAY_MS)
    assert specs["agent.cot"].config["retention.ms"] == "-1"
    assert specs["loan.decisions"].config["retention.ms"] == required
    assert specs["agent.attempts"].config["retention.ms"] == required
    # The ledger stays compacted; only its retention changes.
    assert specs["agent.attempts"].config["cleanup.policy"] == "compact,delete"
    assert "retention.ms" not in specs["loan.applications"].config
    agent = {s.name: s for s in agent_topic_specs(settings, "in", "out", "in.dlq")}
    assert agent["out"].config == {"retention.ms": required}
    assert agent["in"].config == {} and agent["in.dlq"].config == {}


def test_the_local_profile_keeps_todays_topics() -> None:
    specs = topic_specs(Settings())
    assert specs["loan.decisions"].config == {}
    assert specs["agent.attempts"].config["retention.ms"] == str(7 * DAY_MS)
    assert agent_topic_specs(Settings(), "in", "out", "in.dlq")[1].config == {}


def test_the_profile_comes_from_the_environment_and_is_checked() -> None:
    settings = Settings.from_env({"FLIGHTREC_RETENTION_PROFILE": "financial-services"})
    assert settings.retention_profile == "financial-services"
    assert settings.to_env()["FLIGHTREC_RETENTION_PROFILE"] == "financial-services"
    assert Settings.from_env({}).retention_profile == "local"
    with pytest.raises(ConfigError):
        Settings.from_env({"FLIGHTREC_RETENTION_PROFILE": "eu"})


class _Done:
    """A future that has already answered."""

    def __init__(self, value: object = None) -> None:
        self.value = value

    def result(self, timeout: float | None = None) -> object:
        return self.value


class _FakeAdmin:
    """Just enough of ``AdminClient`` for :func:`apply_retention`: topics with a
    ``retention.ms`` each, and the alterations asked for."""

    def __init__(self, retention: dict[str, str]) -> None:
        self.retention = retention
        self.altered: dict[str, str] = {}

    def __call__(self, config: object, logger: object = None) -> _FakeAdmin:
        return self

    def list_topics(self, timeout: float) -> object:
        return SimpleNamespace(topics=dict.fromkeys(self.retention))

    def describe_configs(self, resources: list[Any], request_timeout: float) -> dict[Any, _Done]:
        return {
            r: _Done({"retention.ms": SimpleNamespace(value=self.retention[r.name])})
            for r in resources
        }

    def incremental_alter_configs(
        self, resources: list[Any], request_timeout: float
    ) -> dict[Any, _Done]:
        for r in resources:
            (entry,) = r.incremental_configs
            self.altered[r.name] = entry.value
        return {r: _Done() for r in resources}


def _fake_broker(monkeypatch: pytest.MonkeyPatch, retention: dict[str, str]) -> _FakeAdmin:
    admin = _FakeAdmin(retention)
    monkeypatch.setattr(kafka_retention, "AdminClient", admin)
    monkeypatch.setattr(kafka_retention, "ensure_topics", lambda *a, **k: [])
    return admin


_COMPLIANT = {
    "agent.cot": "-1",
    "loan.decisions": str(183 * DAY_MS),
    "agent.attempts": str(400 * DAY_MS),
}


def test_apply_refuses_a_short_topic_naming_it_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = _fake_broker(monkeypatch, {**_COMPLIANT, "agent.cot": str(30 * DAY_MS)})
    with pytest.raises(ConfigError) as caught:
        apply_retention(Settings(retention_profile="eu-ai-act"))
    assert "agent.cot: retention 30 days" in caught.value.message
    assert "--fix" in caught.value.message and "Art. 19" in caught.value.message
    assert caught.value.context["topics"] == {"agent.cot": 30 * DAY_MS}
    assert admin.altered == {}


def test_apply_with_fix_raises_only_the_short_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = _fake_broker(monkeypatch, {**_COMPLIANT, "out": str(DAY_MS)})
    decisions = agent_topic_specs(Settings(), "in", "out", "in.dlq")[1:2]
    report = apply_retention(Settings(retention_profile="eu-ai-act"), decisions=decisions, fix=True)
    assert admin.altered == {"out": str(183 * DAY_MS)}
    assert report.ok and [p.topic for p in report.raised] == ["out"]
    assert "raised out: retention 1 day (" in report.render()


def test_a_dry_run_reports_and_the_local_profile_asks_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = _fake_broker(monkeypatch, {**_COMPLIANT, "agent.attempts": str(7 * DAY_MS)})
    report = apply_retention(Settings(retention_profile="eu-ai-act"), dry_run=True)
    assert not report.ok and [p.topic for p in report.problems] == ["agent.attempts"]
    assert "TOO SHORT agent.attempts" in report.render() and admin.altered == {}
    assert apply_retention(Settings(), fix=True).ok and admin.altered == {}
