"""Loading .avsc files: malformed files are named with their position; PII is read from tags."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flightrec.contracts.errors import SchemaFileError
from flightrec.contracts.schema_files import (
    CONTRACTS,
    DEFAULT_SCHEMA_DIR,
    load_schema_file,
    load_schemas,
    pii_fields,
    subject_for,
)
from flightrec.contracts.settings import Settings, Topics


def test_every_contract_has_a_valid_schema_file() -> None:
    schemas = load_schemas()
    assert set(schemas) == {c.name for c in CONTRACTS}
    assert all(s["namespace"].startswith("io.flightrec") for s in schemas.values())


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.avsc"
    path.write_text('{\n  "type": "record",\n  "name": "X",\n  "fields": [,]\n}\n')
    with pytest.raises(SchemaFileError) as info:
        load_schema_file(path)
    assert info.value.context["file"] == str(path)
    assert info.value.context["line"] == 4
    assert info.value.context["column"] == 14
    assert "broken.avsc" in str(info.value)


def test_invalid_avro_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad_type.avsc"
    path.write_text(
        json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "strang"}]})
    )
    with pytest.raises(SchemaFileError) as info:
        load_schema_file(path)
    assert info.value.context["file"] == str(path)
    assert "strang" in str(info.value)


def test_missing_file_in_schema_dir(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_SCHEMA_DIR / "cot_event.avsc", tmp_path / "cot_event.avsc")
    with pytest.raises(SchemaFileError):
        load_schemas(tmp_path)


def test_pii_fields_of_loan_application() -> None:
    schemas = load_schemas()
    assert pii_fields(schemas["loan_application"]) == {
        "applicant_name",
        "national_id",
        "date_of_birth",
        "address",
        "email",
        "bank_account",
    }
    assert pii_fields(schemas["cot_event"]) == frozenset()


def test_pii_fields_follow_the_tags_not_a_list() -> None:
    schema = load_schemas()["loan_application"]
    for field in schema["fields"]:
        if field["name"] == "notes":
            field["confluent:tags"] = ["PII", "FREE_TEXT"]
        if field["name"] == "email":
            del field["confluent:tags"]
    found = pii_fields(json.dumps(schema))
    assert "notes" in found
    assert "email" not in found


def test_subjects_follow_topic_names_and_prefix() -> None:
    settings = Settings(topics=Topics().with_prefix("t1."))
    subjects = {c.name: subject_for(c, settings) for c in CONTRACTS}
    assert subjects["cot_event"] == "t1.agent.cot-value"
    assert subjects["loan_application"] == "t1.loan.applications-value"


def test_pii_fields_follow_a_record_named_again() -> None:
    # Avro defines a record once; a second field of that type only names it,
    # and the PII guard must still see the tagged fields behind that name.
    address = {
        "type": "record",
        "name": "Address",
        "fields": [{"name": "street", "type": "string", "confluent:tags": ["PII"]}],
    }
    schema = {
        "type": "record",
        "name": "Claim",
        "namespace": "io.team",
        "fields": [
            {"name": "home", "type": address},
            {"name": "work", "type": ["null", "Address"], "default": None},
            {"name": "past", "type": {"type": "array", "items": "io.team.Address"}},
        ],
    }
    assert pii_fields(schema) == {"home.street", "work.street", "past.street"}
