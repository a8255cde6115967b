"""Governance against the real registry over HTTP: apply is idempotent,
compatibility is the registry's verdict, old events stay readable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError

from flightrec.contracts.codec import Codec, registry_client
from flightrec.contracts.errors import RegistryUnavailableError, SchemaIncompatibleError
from flightrec.contracts.governance import apply_contracts, plan_contracts, show_subject
from flightrec.contracts.schema_files import (
    CONTRACTS,
    DEFAULT_SCHEMA_DIR,
    contract,
    load_schemas,
    schema_text,
    subject_for,
)
from flightrec.contracts.settings import Settings
from flightrec.testing.samples import sample_cot_events


def _edited_dir(tmp_path: Path, name: str, edit: Any) -> Path:
    schema_dir = tmp_path / "schemas"
    shutil.copytree(DEFAULT_SCHEMA_DIR, schema_dir)
    path = schema_dir / f"{name}.avsc"
    schema = json.loads(path.read_text())
    edit(schema)
    path.write_text(json.dumps(schema, indent=2))
    return schema_dir


def _add_optional_envelope_field(schema: dict[str, Any]) -> None:
    schema["fields"].insert(3, {"name": "channel", "type": ["null", "string"], "default": None})


@pytest.mark.integration
def test_apply_registers_then_second_apply_is_a_no_op(settings: Settings) -> None:
    first = apply_contracts(settings)
    assert first.applied and first.ok
    assert [s.action for s in first.subjects] == ["NEW_SUBJECT"] * len(CONTRACTS)
    assert all(s.registered_version == 1 for s in first.subjects)

    second = apply_contracts(settings)
    assert [s.action for s in second.subjects] == ["UNCHANGED"] * len(CONTRACTS)
    assert not second.changes
    assert "no changes" in second.render()

    client = registry_client(settings)
    try:
        for spec in CONTRACTS:
            subject = subject_for(spec, settings)
            assert client.get_compatibility(subject) == spec.compatibility
            assert client.get_versions(subject) == [1]
    finally:
        client.close()
    cot = show_subject(settings, subject_for(contract("cot_event"), settings))
    assert cot["version"] == 1
    assert cot["schema"]["name"] == "CotEvent"
    assert {r["name"] for r in cot["ruleSet"]["domainRules"]} >= {
        "cot_trace_id_format",
        "cot_decision_reasons",
    }
    assert apply_contracts(settings).subjects[2].compatibility == "BACKWARD_TRANSITIVE"


@pytest.mark.integration
def test_adding_an_optional_field_is_a_compatible_new_version(
    settings: Settings, tmp_path: Path
) -> None:
    apply_contracts(settings)
    schema_dir = _edited_dir(tmp_path, "cot_event", _add_optional_envelope_field)
    plan = plan_contracts(settings, schema_dir=schema_dir)
    by_contract = {s.contract: s for s in plan.subjects}
    assert by_contract["cot_event"].action == "NEW_VERSION"
    assert by_contract["cot_event"].compatible
    assert by_contract["loan_decision"].action == "UNCHANGED"
    applied = apply_contracts(settings, schema_dir=schema_dir)
    assert {s.contract: s for s in applied.subjects}["cot_event"].registered_version == 2


@pytest.mark.integration
@pytest.mark.parametrize(
    ("edit", "field"),
    [
        # A new reader field without a default cannot be filled from old records.
        (lambda s: s["fields"].append({"name": "branch_code", "type": "string"}), "branch_code"),
        # string -> long: old records' agent cannot be read as a long.
        (lambda s: [f.update(type="long") for f in s["fields"] if f["name"] == "agent"], "agent"),
    ],
    ids=["add-required-field", "change-type"],
)
def test_incompatible_edits_are_refused_naming_the_field(
    settings: Settings, tmp_path: Path, edit: Any, field: str
) -> None:
    apply_contracts(settings)
    schema_dir = _edited_dir(tmp_path, "loan_decision", edit)
    subject = subject_for(contract("loan_decision"), settings)

    plan = plan_contracts(settings, schema_dir=schema_dir)
    decision = {s.contract: s for s in plan.subjects}["loan_decision"]
    assert not decision.compatible and not plan.ok
    assert any(field in m for m in decision.messages), decision.messages

    with pytest.raises(SchemaIncompatibleError) as info:
        apply_contracts(settings, schema_dir=schema_dir)
    assert info.value.context["subject"] == subject

    # The registry itself answers a direct registration with 409 naming the field.
    client = registry_client(settings)
    try:
        edited = schema_text(load_schemas(schema_dir)["loan_decision"])
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema(subject, Schema(edited, "AVRO"))
        assert refused.value.http_status_code == 409
        # Registries name a missing default by field name and a type mismatch
        # by its JSON path (/fields/<index>); either identifies the field.
        index = [f["name"] for f in load_schemas(schema_dir)["loan_decision"]["fields"]].index(
            field
        )
        assert (
            field in refused.value.error_message
            or f"/fields/{index}" in refused.value.error_message
        )
        assert client.get_versions(subject) == [1]
    finally:
        client.close()


def _drop_field(name: str) -> Any:
    def edit(schema: dict[str, Any]) -> None:
        schema["fields"] = [f for f in schema["fields"] if f["name"] != name]

    return edit


def _retype_field(name: str, avro_type: str) -> Any:
    def edit(schema: dict[str, Any]) -> None:
        for f in schema["fields"]:
            if f["name"] == name:
                f["type"] = avro_type

    return edit


@pytest.mark.integration
def test_removing_a_field_is_accepted_under_backward(settings: Settings, tmp_path: Path) -> None:
    # The Avro rule: a reader skips writer fields it does not declare, so a new
    # schema without model_profile reads every old record (BACKWARD holds). Only
    # an old reader, which needs model_profile and has no default for it, could
    # not read new records: that is FORWARD's concern, not BACKWARD's.
    apply_contracts(settings)
    subject = subject_for(contract("loan_decision"), settings)
    schema_dir = _edited_dir(tmp_path, "loan_decision", _drop_field("model_profile"))
    plan = plan_contracts(settings, schema_dir=schema_dir)
    decision = {s.contract: s for s in plan.subjects}["loan_decision"]
    assert decision.action == "NEW_VERSION" and decision.compatible, decision.messages
    applied = apply_contracts(settings, schema_dir=schema_dir)
    assert {s.contract: s for s in applied.subjects}["loan_decision"].registered_version == 2
    client = registry_client(settings)
    try:
        assert client.get_compatibility(subject) == "BACKWARD"
        assert client.get_versions(subject) == [1, 2]
    finally:
        client.close()


@pytest.mark.integration
@pytest.mark.parametrize("level", ["FORWARD", "FULL"])
@pytest.mark.parametrize(
    ("edit", "field", "by_name"),
    [
        # The old schema reads new records: model_profile is missing from them
        # and the old schema has no default for it.
        (_drop_field("model_profile"), "model_profile", True),
        # string -> long: neither side reads the other's agent.
        (_retype_field("agent", "long"), "agent", False),
    ],
    ids=["remove-field-without-default", "change-type"],
)
def test_the_registry_refuses_removal_and_type_change_with_409_naming_the_field(
    settings: Settings, tmp_path: Path, level: str, edit: Any, field: str, by_name: bool
) -> None:
    apply_contracts(settings)
    subject = subject_for(contract("loan_decision"), settings)
    schema_dir = _edited_dir(tmp_path, "loan_decision", edit)
    edited = load_schemas(schema_dir)["loan_decision"]
    original = load_schemas()["loan_decision"]
    index = [f["name"] for f in original["fields"]].index(field)
    client = registry_client(settings)
    try:
        client.set_compatibility(subject, level)
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema(subject, Schema(schema_text(edited), "AVRO"))
        assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
        message = refused.value.error_message
        # A missing default is named by the field's name; a type mismatch by its
        # path (/fields/<index>, the same index in both schemas) at least.
        assert (
            f"'{field}'" in message
            if by_name
            else (f"'{field}'" in message or f"/fields/{index}" in message)
        ), message
        assert client.get_versions(subject) == [1]
    finally:
        client.close()


@pytest.mark.integration
def test_plan_is_judged_at_the_level_apply_sets(settings: Settings, tmp_path: Path) -> None:
    apply_contracts(settings)
    subject = subject_for(contract("loan_decision"), settings)
    client = registry_client(settings)
    try:
        # Loosened out of band: the registry itself would now accept anything.
        client.set_compatibility(subject, "NONE")
        schema_dir = _edited_dir(
            tmp_path,
            "loan_decision",
            lambda s: s["fields"].append({"name": "branch_code", "type": "string"}),
        )
        plan = plan_contracts(settings, schema_dir=schema_dir)
        decision = {s.contract: s for s in plan.subjects}["loan_decision"]
        assert decision.compatibility == "BACKWARD" and decision.current_compatibility == "NONE"
        assert not decision.compatible
        assert any("branch_code" in m for m in decision.messages), decision.messages
        with pytest.raises(SchemaIncompatibleError):
            apply_contracts(settings, schema_dir=schema_dir)
        # Refused as a whole: neither a version nor the level was written.
        assert client.get_versions(subject) == [1]
        assert client.get_compatibility(subject) == "NONE"
    finally:
        client.close()


@pytest.mark.integration
async def test_events_written_with_v1_are_read_with_the_v2_reader(
    settings: Settings, tmp_path: Path
) -> None:
    apply_contracts(settings)
    v1 = Codec(settings)
    await v1.start()
    events = sample_cot_events()
    written_v1 = [await v1.encode_cot(e) for e in events]

    apply_contracts(
        settings, schema_dir=_edited_dir(tmp_path, "cot_event", _add_optional_envelope_field)
    )
    v2 = Codec(settings)
    await v2.start()
    registered = v2.registered("cot_event")
    assert registered is not None and registered.version == 2
    written_v2 = [await v2.encode_cot(e) for e in events]
    assert {int.from_bytes(b[1:5], "big") for b in written_v1} != {
        int.from_bytes(b[1:5], "big") for b in written_v2
    }
    # One reader, a log holding both versions.
    assert [await v2.decode_cot(b) for b in written_v1 + written_v2] == events + events
    await v1.close()
    await v2.close()


@pytest.mark.timeout(60)
def test_unreachable_registry_fails_clearly_after_bounded_retries() -> None:
    settings = Settings(schema_registry_url="http://127.0.0.1:9")
    with pytest.raises(RegistryUnavailableError) as info:
        apply_contracts(settings)
    assert info.value.retryable
    assert "127.0.0.1:9" in str(info.value)


@pytest.mark.timeout(60)
async def test_codec_start_with_unreachable_registry_fails_clearly() -> None:
    codec = Codec(Settings(schema_registry_url="http://127.0.0.1:9"))
    with pytest.raises(RegistryUnavailableError):
        await codec.start()
    await codec.close()
