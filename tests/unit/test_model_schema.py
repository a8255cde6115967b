"""A team's pydantic model becomes the Avro schema flightrec registers: the
mapping table, PII tags, a fastavro round trip, and the models it refuses."""

from __future__ import annotations

import copy
import io
import json
import pickle
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import fastavro
import pytest
from pydantic import BaseModel, Field

from flightrec.contracts.errors import ContractError, ModelSchemaError
from flightrec.contracts.model_schema import PII, avro_schema_for, pii_fields_of
from flightrec.contracts.schema_files import load_schema_file, pii_fields, schema_text

NS = "io.team"


class Address(BaseModel):
    """Where someone lives."""

    street: Annotated[str, PII]
    city: str


class Claim(BaseModel):
    """An insurance claim,
    as the team's intake sends it."""

    claim_id: str = Field(description="Unique per claim")
    claimant_name: Annotated[str, PII]
    email: str | None = Field(None, json_schema_extra={"pii": True})
    phone: Annotated[str, PII] | None = None
    amount: float
    items: int
    urgent: bool = False
    filed_at: datetime
    incident_day: date
    channel: Literal["WEB", "PHONE"] = "WEB"
    note: str | None = None
    tags: list[str] = Field(default_factory=list)
    home: Address
    previous: list[Address] = Field(default_factory=list)
    billing: Address | None = None


ADDRESS_RECORD: dict[str, Any] = {
    "type": "record",
    "name": "Address",
    "doc": "Where someone lives.",
    "fields": [
        {"name": "street", "type": "string", "confluent:tags": ["PII"]},
        {"name": "city", "type": "string"},
    ],
}

CLAIM_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Claim",
    "namespace": NS,
    "doc": "An insurance claim, as the team's intake sends it.",
    "fields": [
        {"name": "claim_id", "type": "string", "doc": "Unique per claim"},
        {"name": "claimant_name", "type": "string", "confluent:tags": ["PII"]},
        {"name": "email", "type": ["null", "string"], "default": None, "confluent:tags": ["PII"]},
        {"name": "phone", "type": ["null", "string"], "default": None, "confluent:tags": ["PII"]},
        {"name": "amount", "type": "double"},
        {"name": "items", "type": "long"},
        {"name": "urgent", "type": "boolean", "default": False},
        {"name": "filed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "incident_day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "channel", "type": "string", "default": "WEB"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
        {"name": "home", "type": ADDRESS_RECORD},
        {"name": "previous", "type": {"type": "array", "items": "Address"}, "default": []},
        {"name": "billing", "type": ["null", "Address"], "default": None},
    ],
}


def _claim() -> Claim:
    return Claim(
        claim_id="c-1",
        claimant_name="Ada Lovelace",
        email="ada@example.org",
        amount=1250.5,
        items=3,
        urgent=True,
        filed_at=datetime(2024, 5, 17, 9, 30, 12, 123456, tzinfo=UTC),
        incident_day=date(2024, 5, 16),
        channel="PHONE",
        tags=["water", "kitchen"],
        home=Address(street="1 Main St", city="London"),
        previous=[Address(street="2 Side St", city="Leeds")],
    )


def test_every_supported_type_maps_as_the_table_says() -> None:
    assert avro_schema_for(Claim, namespace=NS) == CLAIM_SCHEMA


def test_the_schema_loads_as_a_schema_file(tmp_path: Path) -> None:
    path = tmp_path / "claim.avsc"
    path.write_text(schema_text(avro_schema_for(Claim, namespace=NS)), encoding="utf-8")
    assert load_schema_file(path) == CLAIM_SCHEMA


def test_name_and_doc_can_be_given() -> None:
    schema = avro_schema_for(Address, name="Home", namespace=NS, doc="A home.")
    assert (schema["name"], schema["namespace"], schema["doc"]) == ("Home", NS, "A home.")


def test_a_nested_model_used_twice_is_defined_once() -> None:
    text = json.dumps(avro_schema_for(Claim, namespace=NS))
    assert text.count('"name": "Address"') == 1
    assert text.count('"Address"') == 3  # the definition and two references


def test_pii_tags_match_the_marked_fields() -> None:
    schema = avro_schema_for(Claim, namespace=NS)
    expected = {
        "claimant_name",
        "email",
        "phone",
        "home.street",
        "previous.street",
        "billing.street",
    }
    assert pii_fields_of(Claim) == expected
    # The PII guard reads the registered schema's tags: the same paths.
    assert pii_fields(schema) == expected
    assert pii_fields(json.dumps(schema)) == expected


def test_round_trip_through_fastavro_gives_back_the_model() -> None:
    parsed = fastavro.parse_schema(avro_schema_for(Claim, namespace=NS))
    for claim in (_claim(), _claim().model_copy(update={"billing": Address(street="x", city="y")})):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, claim.model_dump())
        buffer.seek(0)
        datum = fastavro.schemaless_reader(buffer, parsed, parsed)
        assert Claim.model_validate(datum) == claim


def test_a_reader_fills_the_defaults_of_fields_an_older_writer_lacked() -> None:
    # The defaults are real Avro defaults: a field added with one reads old data.
    old = fastavro.parse_schema(
        {"type": "record", "name": "Claim", "namespace": NS, "fields": [CLAIM_SCHEMA["fields"][0]]}
    )
    new = fastavro.parse_schema(avro_schema_for(Claim, namespace=NS))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, old, {"claim_id": "c-9"})
    buffer.seek(0)
    with pytest.raises(fastavro.read.SchemaResolutionError, match="claimant_name"):
        fastavro.schemaless_reader(buffer, old, new)

    class Later(BaseModel):
        claim_id: str
        urgent: bool = False
        tags: list[str] = Field(default_factory=list)
        billing: Address | None = None

    buffer.seek(0)
    later = fastavro.parse_schema(avro_schema_for(Later, name="Claim", namespace=NS))
    datum = fastavro.schemaless_reader(buffer, old, later)
    assert Later.model_validate(datum) == Later(claim_id="c-9")


def test_a_non_null_default_of_an_optional_field_leads_the_union() -> None:
    class Reminder(BaseModel):
        channel: str | None = "email"
        at: datetime = datetime(2024, 1, 1, tzinfo=UTC)
        on: date = date(1970, 1, 11)

    fields = avro_schema_for(Reminder, namespace=NS)["fields"]
    assert fields[0] == {"name": "channel", "type": ["string", "null"], "default": "email"}
    assert fields[1]["default"] == 1_704_067_200_000_000
    assert fields[2]["default"] == 10


def test_the_same_model_gives_the_same_schema_text() -> None:
    first = json.dumps(avro_schema_for(Claim, namespace=NS))
    second = json.dumps(avro_schema_for(Claim, namespace=NS))
    assert first == second == json.dumps(CLAIM_SCHEMA)


def test_pii_on_an_int_names_model_and_field() -> None:
    class Policy(BaseModel):
        holder_age: Annotated[int, PII]

    with pytest.raises(ModelSchemaError, match="PII marks str fields only") as caught:
        avro_schema_for(Policy, namespace=NS)
    assert caught.value.context == {"model": "Policy", "field": "holder_age"}
    assert "Policy" in str(caught.value) and "holder_age" in str(caught.value)
    with pytest.raises(ModelSchemaError):
        pii_fields_of(Policy)


def test_pii_on_list_items_is_refused() -> None:
    class Contacts(BaseModel):
        emails: list[Annotated[str, PII]]

    with pytest.raises(ModelSchemaError, match="whole str field") as caught:
        avro_schema_for(Contacts, namespace=NS)
    assert caught.value.context == {"model": "Contacts", "field": "emails"}


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (dict[str, int], "no Avro mapping"),
        (Any, "no Avro mapping"),
        (int | str, "no Avro mapping"),
        (int | str | None, "no Avro mapping"),
        (Literal[1, 2], "Literal of strings"),
        (list, "no Avro mapping"),
    ],
)
def test_unsupported_types_name_model_and_field(annotation: Any, message: str) -> None:
    Payload = type("Payload", (BaseModel,), {"__annotations__": {"extra": annotation}})

    with pytest.raises(ModelSchemaError, match=message) as caught:
        avro_schema_for(Payload, namespace=NS)
    assert caught.value.context == {"model": "Payload", "field": "extra"}
    assert isinstance(caught.value, ContractError)


def test_a_nested_model_names_its_own_field() -> None:
    class Inner(BaseModel):
        data: dict[str, str]

    class Outer(BaseModel):
        inner: Inner

    with pytest.raises(ModelSchemaError) as caught:
        avro_schema_for(Outer, namespace=NS)
    assert caught.value.context == {"model": "Inner", "field": "data"}


def test_two_models_with_one_name_are_refused() -> None:
    other = type("Address", (BaseModel,), {"__annotations__": {"line": str}})
    both = type("Both", (BaseModel,), {"__annotations__": {"a": Address, "b": other}})

    with pytest.raises(ModelSchemaError, match="both named 'Address'") as caught:
        avro_schema_for(both, namespace=NS)
    assert caught.value.context == {"model": "Both", "field": "b"}


def test_a_default_that_does_not_fit_its_type_is_refused() -> None:
    class Loose(BaseModel):
        count: int = "many"  # type: ignore[assignment]

    with pytest.raises(ModelSchemaError, match="not a valid Avro schema"):
        avro_schema_for(Loose, namespace=NS)


def test_the_marker_is_one_object() -> None:
    assert repr(PII) == "PII"
    assert copy.deepcopy(PII) is PII
    assert pickle.loads(pickle.dumps(PII)) is PII
    assert type(PII)() is PII
    with pytest.raises(AttributeError):
        PII.label = "x"  # type: ignore[attr-defined]
