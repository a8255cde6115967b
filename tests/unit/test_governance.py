"""Governance as code against the embedded registry over HTTP, state in memory.

The registry runs in a thread of this process on a free port (no Kafka), and
governance talks to it through confluent-kafka's ``SchemaRegistryClient`` as it
would to Confluent's. Covered here: ``contracts apply`` prints the plan before
it registers; verdicts are judged under the level apply sets (BACKWARD,
BACKWARD_TRANSITIVE for the CoT subject), not the level the registry holds;
one incompatible subject means nothing is written at all.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from flightrec.cli import main
from flightrec.contracts.errors import SchemaIncompatibleError
from flightrec.contracts.governance import apply_contracts, check_contracts, plan_contracts
from flightrec.contracts.rules import FIELD_PARAM, rule_specs
from flightrec.contracts.schema_files import CONTRACTS, DEFAULT_SCHEMA_DIR, contract, subject_for
from flightrec.contracts.settings import Settings

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def settings(http_registry: Settings) -> Settings:
    """Settings pointing at a fresh in-memory registry served over HTTP."""
    return http_registry


@pytest.fixture
def client(settings: Settings) -> Iterator[SchemaRegistryClient]:
    registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    yield registry
    registry.close()


def _subject(name: str, settings: Settings) -> str:
    return subject_for(contract(name), settings)


def _schema_dir(tmp_path: Path, edits: dict[str, Edit]) -> Path:
    schema_dir = tmp_path / "schemas"
    shutil.copytree(DEFAULT_SCHEMA_DIR, schema_dir)
    for name, edit in edits.items():
        path = schema_dir / f"{name}.avsc"
        schema = json.loads(path.read_text())
        edit(schema)
        path.write_text(json.dumps(schema, indent=2))
    return schema_dir


def _add_optional(schema: dict[str, Any]) -> None:
    schema["fields"].append({"name": "channel", "type": ["null", "string"], "default": None})


def _add_required(schema: dict[str, Any]) -> None:
    schema["fields"].append({"name": "reviewer", "type": "string"})


def _drop(name: str) -> Edit:
    def edit(schema: dict[str, Any]) -> None:
        schema["fields"] = [f for f in schema["fields"] if f["name"] != name]

    return edit


def _cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    *argv: str,
) -> tuple[int, str]:
    monkeypatch.setenv("FLIGHTREC_SCHEMA_REGISTRY_URL", settings.schema_registry_url)
    code = main(list(argv))
    return code, capsys.readouterr().out


# -- the plan comes first --------------------------------------------------------------


def test_apply_prints_the_plan_then_registers(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    client: SchemaRegistryClient,
) -> None:
    code, out = _cli(monkeypatch, capsys, settings, "contracts", "apply")
    assert code == 0
    plan, _, applied = out.partition("applied:\n")
    assert plan.startswith("plan:\n"), out
    assert applied, out
    # The plan: every subject new, with its verdict and the level apply sets.
    assert plan.count("NEW_SUBJECT") == len(CONTRACTS)
    assert plan.count("compatible") == len(CONTRACTS)
    assert "compatibility=unset -> BACKWARD_TRANSITIVE" in plan
    assert plan.count("compatibility=unset -> BACKWARD\n") == len(CONTRACTS) - 1
    assert "registered=" not in plan
    # Then the result.
    assert applied.count("registered=v1") == len(CONTRACTS)
    assert client.get_versions(_subject("cot_event", settings)) == [1]

    code, out = _cli(monkeypatch, capsys, settings, "contracts", "apply")
    assert code == 0
    plan, _, applied = out.partition("applied:\n")
    assert plan.startswith("plan:\n") and plan.count("UNCHANGED") == len(CONTRACTS)
    assert "no changes" in applied


def test_dry_run_prints_the_plan_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    client: SchemaRegistryClient,
) -> None:
    code, out = _cli(monkeypatch, capsys, settings, "contracts", "apply", "--dry-run")
    assert code == 0
    assert out.startswith("plan:\n") and out.count("NEW_SUBJECT") == len(CONTRACTS)
    assert "applied:" not in out
    assert client.get_subjects() == []


# -- verdicts under the level apply sets -----------------------------------------------


def test_verdict_uses_the_governed_level_not_a_looser_one(
    settings: Settings, client: SchemaRegistryClient, tmp_path: Path
) -> None:
    apply_contracts(settings)
    subject = _subject("replay_result", settings)
    # Someone loosened the subject: under NONE the registry accepts anything.
    client.set_compatibility(subject, "NONE")
    schema_dir = _schema_dir(tmp_path, {"replay_result": _add_required})
    assert client.test_compatibility(subject, Schema(_text(schema_dir, "replay_result"), "AVRO"))

    plan = check_contracts(settings, schema_dir=schema_dir)
    replay = _by_contract(plan)["replay_result"]
    assert (replay.action, replay.compatible) == ("NEW_VERSION", False)
    assert replay.judged_by == "avro-checker"
    assert any("field 'reviewer'" in m for m in replay.messages), replay.messages
    assert "INCOMPATIBLE*" in plan.render() and "compatibility=NONE -> BACKWARD" in plan.render()
    with pytest.raises(SchemaIncompatibleError):
        apply_contracts(settings, schema_dir=schema_dir)
    assert client.get_versions(subject) == [1]
    assert client.get_compatibility(subject) == "NONE"  # refused: not even the level changed


def test_verdict_uses_the_governed_level_not_a_stricter_one(
    settings: Settings, client: SchemaRegistryClient, tmp_path: Path
) -> None:
    apply_contracts(settings)
    subject = _subject("loan_decision", settings)
    # Under FORWARD the registry refuses dropping a field without a default;
    # under BACKWARD (what apply sets) a new reader simply skips it.
    client.set_compatibility(subject, "FORWARD")
    schema_dir = _schema_dir(tmp_path, {"loan_decision": _drop("model_profile")})
    assert not client.test_compatibility(
        subject, Schema(_text(schema_dir, "loan_decision"), "AVRO")
    )

    plan = plan_contracts(settings, schema_dir=schema_dir)
    decision = _by_contract(plan)["loan_decision"]
    assert (decision.action, decision.compatible) == ("NEW_VERSION", True)
    assert decision.judged_by == "avro-checker"
    applied = _by_contract(apply_contracts(settings, schema_dir=schema_dir))["loan_decision"]
    assert applied.registered_version == 2
    assert client.get_compatibility(subject) == "BACKWARD"


def test_cot_subject_is_judged_transitively_even_when_the_registry_is_not(
    settings: Settings, client: SchemaRegistryClient, tmp_path: Path
) -> None:
    apply_contracts(settings)
    subject = _subject("cot_event", settings)
    client.set_compatibility(subject, "BACKWARD")
    # v2 (registered by hand) drops prompt_version; the local v3 brings it back as
    # a long with a default: v3 reads v2 records, not v1's (a string is no long).
    v1 = json.loads(client.get_version(subject, 1).schema.schema_str or "{}")
    _drop("prompt_version")(v1)
    client.register_schema(subject, Schema(json.dumps(v1), "AVRO"))

    def retype(schema: dict[str, Any]) -> None:
        for f in schema["fields"]:
            if f["name"] == "prompt_version":
                f.update(type="long", default=0)

    schema_dir = _schema_dir(tmp_path, {"cot_event": retype})
    assert client.test_compatibility_all_versions(
        subject, Schema(_text(schema_dir, "cot_event"), "AVRO")
    )  # the registry, still at BACKWARD, tests v2 only

    plan = plan_contracts(settings, schema_dir=schema_dir)
    cot = _by_contract(plan)["cot_event"]
    assert (cot.compatibility, cot.compatible) == ("BACKWARD_TRANSITIVE", False)
    assert "{oldSchemaVersion: 1}" in cot.messages
    assert any("field 'prompt_version'" in m for m in cot.messages), cot.messages


def test_registry_decides_when_it_already_holds_the_level(
    settings: Settings, client: SchemaRegistryClient, tmp_path: Path
) -> None:
    apply_contracts(settings)
    schema_dir = _schema_dir(tmp_path, {"loan_decision": _add_required})
    decision = _by_contract(plan_contracts(settings, schema_dir=schema_dir))["loan_decision"]
    assert (decision.judged_by, decision.compatible) == ("registry", False)
    assert any("reviewer" in m for m in decision.messages), decision.messages
    assert "INCOMPATIBLE " in plan_contracts(settings, schema_dir=schema_dir).render()


# -- all or nothing --------------------------------------------------------------------


def test_one_incompatible_subject_means_nothing_is_written(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    client: SchemaRegistryClient,
    tmp_path: Path,
) -> None:
    apply_contracts(settings)
    levels_before = {s: client.get_compatibility(s) for s in _subjects(settings)}
    # A pending level change too: apply would set loan_application back to BACKWARD.
    client.set_compatibility(_subject("loan_application", settings), "FULL")
    levels_before[_subject("loan_application", settings)] = "FULL"
    # Compatible changes first in registration order, the incompatible one last.
    schema_dir = _schema_dir(
        tmp_path,
        {
            "loan_application": _add_optional,
            "cot_event": _add_optional,
            "replay_result": _add_required,
        },
    )

    code, out = _cli(
        monkeypatch, capsys, settings, "contracts", "apply", "--schema-dir", str(schema_dir)
    )
    assert code == 1
    assert out.startswith("plan:\n") and "applied:" not in out
    assert out.count("NEW_VERSION") == 3 and out.count("INCOMPATIBLE") == 1
    assert "reviewer" in out
    assert "nothing was registered" in out
    assert _subject("replay_result", settings) in out.splitlines()[-1]

    with pytest.raises(SchemaIncompatibleError) as info:
        apply_contracts(settings, schema_dir=schema_dir)
    assert info.value.context["subjects"] == [_subject("replay_result", settings)]

    for subject in _subjects(settings):
        assert client.get_versions(subject) == [1], subject
        assert client.get_compatibility(subject) == levels_before[subject], subject


# -- what apply registers carries every rule ---------------------------------------------

# The rules each subject must carry, by name (the ones contracts/rules.py documents),
# so that dropping a rule's definition fails here too, not only losing it on the way.
GOVERNED_RULES = {
    "loan_application": [
        # Generated: one per float field, first (NaN and infinity are refused).
        "application_amount_finite",
        "application_annual_income_finite",
        "application_monthly_debt_payments_finite",
        "application_employment_years_finite",
        "application_amount_positive",
        "application_currency_iso4217",
        "application_term_bounds",
        "application_applicant_adult",
    ],
    "cot_event": [
        "cot_seq_non_negative",
        "cot_trace_id_format",
        "cot_decision_outcome",
        "cot_decision_reasons",
    ],
}


def _expected_rules(name: str, settings: Settings) -> list[dict[str, Any]]:
    """The rules of ``name`` as rules.py defines them, with the mode and actions its
    docstring gives: applications WRITEREAD and DLQ then ERROR, CoT events WRITE and ERROR."""
    if name == "loan_application":
        mode, on_failure = "WRITEREAD", "DLQ,ERROR"
        extra = {"dlq.topic": settings.topics.applications_dlq, "dlq.key.field": "application_id"}
    else:
        mode, on_failure, extra = "WRITE", "ERROR", {}
    return [
        {
            "name": spec.name,
            "kind": "CONDITION",
            "type": "CEL",
            "mode": mode,
            "expr": spec.expr,
            "onFailure": on_failure,
            "params": {FIELD_PARAM: spec.field, **extra},
        }
        for spec in rule_specs(name)
    ]


def test_apply_registers_every_rule_the_contracts_define(
    settings: Settings, client: SchemaRegistryClient
) -> None:
    # The real registration path: apply_contracts over HTTP, then the ruleSet as
    # the registry hands it back (unit codecs build their rules another way).
    apply_contracts(settings)
    keys = ("name", "kind", "type", "mode", "expr", "onFailure", "params")
    for spec in CONTRACTS:
        registered = client.get_latest_version(_subject(spec.name, settings)).schema
        rule_set = registered.rule_set.to_dict() if registered.rule_set is not None else {}
        rules = [{k: rule.get(k) for k in keys} for rule in rule_set.get("domainRules") or []]
        assert rules == _expected_rules(spec.name, settings), spec.name
        assert [r["name"] for r in rules] == GOVERNED_RULES.get(spec.name, []), spec.name
    assert set(GOVERNED_RULES) <= {spec.name for spec in CONTRACTS}


def _subjects(settings: Settings) -> list[str]:
    return [subject_for(spec, settings) for spec in CONTRACTS]


def _by_contract(plan: Any) -> dict[str, Any]:
    return {s.contract: s for s in plan.subjects}


def _text(schema_dir: Path, name: str) -> str:
    return (schema_dir / f"{name}.avsc").read_text()
