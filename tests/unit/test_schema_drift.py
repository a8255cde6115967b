"""The pydantic models and the .avsc files cannot drift: field names,
nullability, types and defaults agree, for every model and every CoT kind."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastavro.schema import expand_schema
from pydantic import BaseModel

from flightrec.contracts.avro_mapping import COT_KIND_MODELS, ENVELOPE_FIELDS
from flightrec.contracts.events import (
    COT_KINDS,
    CotEventBase,
    LoanApplication,
    LoanDecision,
    ReplayResult,
)
from flightrec.contracts.schema_files import load_schemas
from flightrec.testing.schema_drift import payload_field, schema_drift


def _expanded(name: str) -> dict[str, Any]:
    expanded: dict[str, Any] = expand_schema(load_schemas()[name])  # type: ignore[assignment]
    return expanded


def _field(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in record["fields"] if f["name"] == name)


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (LoanApplication, "loan_application"),
        (LoanDecision, "loan_decision"),
    ],
)
def test_business_models_match_their_schema(model: type[BaseModel], name: str) -> None:
    assert schema_drift(model, _expanded(name)) == []


def test_replay_result_matches_its_schema() -> None:
    record = _expanded("replay_result")
    for side in ("old", "new"):
        record = _as_model_sees_it(record, f"{side}_outcome", nullable=True)
    assert schema_drift(ReplayResult, record) == []


def test_cot_envelope_matches() -> None:
    record = _expanded("cot_event")
    payloads = {payload_field(k) for k in COT_KINDS}
    envelope = {
        **record,
        "fields": [f for f in record["fields"] if f["name"] not in payloads | {"kind"}],
    }
    assert schema_drift(CotEventBase, envelope) == []
    assert _field(record, "kind")["type"]["symbols"] == list(COT_KINDS)


@pytest.mark.parametrize("kind", COT_KINDS)
def test_every_cot_kind_matches_its_payload_record(kind: str) -> None:
    record = _expanded("cot_event")
    branches = _field(record, payload_field(kind))["type"]
    assert branches[0] == "null"
    skip = frozenset(ENVELOPE_FIELDS | {"kind"})
    payload = branches[1]
    if kind in {"DECISION", "RUN_COMPLETED"}:
        payload = _as_model_sees_it(payload, "outcome")
    assert schema_drift(COT_KIND_MODELS[kind], payload, skip=skip) == []


def _as_model_sees_it(
    record: dict[str, Any], name: str, *, nullable: bool = False
) -> dict[str, Any]:
    """A labelled record as the model has it: the written label is ``name``.

    The schema keeps the loan-only enum ``name`` (nullable, so records written
    under it still read) and writes every agent's label to ``<name>_label``;
    the mapping reads either into the model's ``name``.
    """
    legacy = _field(record, name)
    assert legacy["type"][0] == "null" and legacy["type"][1]["type"] == "enum"
    assert legacy["default"] is None
    assert _field(record, f"{name}_label")["type"] == ["null", "string"]
    fields = [f for f in record["fields"] if f["name"] not in {name, f"{name}_label"}]
    label: dict[str, Any] = (
        {"name": name, "type": ["null", "string"], "default": None}
        if nullable
        else {"name": name, "type": "string"}
    )
    return {**record, "fields": [*fields, label]}


# The drift check must be able to fail: each edit below is a real drift.
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ("remove", "in the model, missing from the schema"),
        ("add", "in the schema, missing from the model"),
        ("type", "expected for"),
        ("nullable", "nullable"),
        ("enum", "symbols"),
        ("default", "default"),
    ],
)
def test_drift_is_detected(edit: str, expected: str) -> None:
    record = copy.deepcopy(_expanded("loan_decision"))
    fields = record["fields"]
    if edit == "remove":
        fields[:] = [f for f in fields if f["name"] != "agent"]
    elif edit == "add":
        fields.append({"name": "extra", "type": "string"})
    elif edit == "type":
        _field(record, "attempt")["type"] = "int"
    elif edit == "nullable":
        _field(record, "agent")["type"] = ["null", "string"]
    elif edit == "enum":
        _field(record, "outcome")["type"]["symbols"] = ["APPROVE", "DECLINE"]
    elif edit == "default":
        _field(record, "conditions")["default"] = ["x"]
    problems = schema_drift(LoanDecision, record)
    assert problems and any(expected in p for p in problems), problems
