"""Every contract round-trips pydantic -> Avro (Confluent wire format, through a
registry) -> pydantic unchanged. The registry here is confluent-kafka's own
in-process mock (``SchemaRegistryClient.new_client`` on a ``mock://`` URL);
tests/integration/test_codec.py repeats this over HTTP against the real registry."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from pydantic import ValidationError

from flightrec.contracts.avro_mapping import cot_from_avro, cot_to_avro
from flightrec.contracts.chain import canonical_text, event_hash
from flightrec.contracts.codec import Codec
from flightrec.contracts.compatibility import check_compatibility, parse_avro
from flightrec.contracts.events import COT_KINDS, CotEventBase, RunStarted
from flightrec.contracts.rules import rule_set_for
from flightrec.contracts.schema_files import CONTRACTS, load_schemas, schema_text, subject_for
from flightrec.contracts.settings import Settings
from flightrec.testing.samples import (
    sample_application,
    sample_cot_events,
    sample_decision,
    sample_replay,
)
from flightrec.testing.schema_drift import payload_field


def _registered_codec(settings: Settings) -> Codec:
    client = SchemaRegistryClient.new_client({"url": "mock://events-avro"})
    schemas = load_schemas()
    for spec in CONTRACTS:
        client.register_schema(
            subject_for(spec, settings),
            Schema(
                schema_text(schemas[spec.name]), "AVRO", rule_set=rule_set_for(spec.name, settings)
            ),
        )
    return Codec(settings, client)


@pytest.fixture
async def codec() -> Codec:
    codec = _registered_codec(Settings())
    await codec.start()
    return codec


def test_samples_cover_every_kind() -> None:
    assert sorted(e.kind for e in sample_cot_events()) == sorted(COT_KINDS)  # type: ignore[attr-defined]


@pytest.mark.parametrize("event", sample_cot_events(), ids=lambda e: e.kind)
async def test_cot_event_round_trip(codec: Codec, event: CotEventBase) -> None:
    data = await codec.encode_cot(event)
    # Confluent wire format: magic byte 0, then the registered schema id.
    registered = codec.registered("cot_event")
    assert registered is not None
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == registered.schema_id
    assert await codec.decode_cot(data) == event


@pytest.mark.parametrize("event", sample_cot_events(), ids=lambda e: e.kind)
def test_only_the_kind_payload_is_set(event: CotEventBase) -> None:
    datum = cot_to_avro(event)
    kind = event.kind  # type: ignore[attr-defined]
    set_payloads = [k for k in COT_KINDS if datum[payload_field(k)] is not None]
    assert set_payloads == [kind]
    assert cot_from_avro(datum) == event


async def test_application_round_trip(codec: Codec) -> None:
    application = sample_application()
    assert (
        await codec.decode_application(await codec.encode_application(application)) == application
    )


async def test_decision_round_trip(codec: Codec) -> None:
    decision = sample_decision()
    assert await codec.decode_decision(await codec.encode_decision(decision)) == decision


async def test_replay_round_trip(codec: Codec) -> None:
    result = sample_replay()
    assert await codec.decode_replay(await codec.encode_replay(result)) == result


async def test_optional_fields_absent_round_trip(codec: Codec) -> None:
    event = sample_cot_events()[1].model_copy(
        update={
            "parent_span_id": None,
            "gen_ai_response_model": None,
            "gen_ai_request_temperature": None,
            "gen_ai_request_seed": None,
            "output_json": None,
        }
    )
    assert await codec.decode_cot(await codec.encode_cot(event)) == event


async def test_bytes_of_another_contract_are_rejected(codec: Codec) -> None:
    from flightrec.contracts.errors import DecodeError

    data = await codec.encode_decision(sample_decision())
    with pytest.raises(DecodeError):
        await codec.decode_cot(data)
    with pytest.raises(DecodeError):
        await codec.decode_cot(b"not avro at all")


# ------------------------------------------- evolution: upstream_traceparent


def _schema_before_upstream_traceparent() -> dict[str, Any]:
    """The CoT schema as it was before ``RUN_STARTED.upstream_traceparent``."""
    schema = copy.deepcopy(load_schemas()["cot_event"])
    (payload,) = (f for f in schema["fields"] if f["name"] == payload_field("RUN_STARTED"))
    record = payload["type"][1]
    record["fields"] = [f for f in record["fields"] if f["name"] != "upstream_traceparent"]
    return schema


def test_upstream_traceparent_is_a_backward_transitive_evolution() -> None:
    new = parse_avro(schema_text(load_schemas()["cot_event"]))
    old = parse_avro(schema_text(_schema_before_upstream_traceparent()))
    assert old.canonical != new.canonical  # the field really is new
    report = check_compatibility(new, [(1, old)], "BACKWARD_TRANSITIVE")
    assert report.compatible, report.messages


def test_a_run_started_recorded_before_upstream_traceparent_reads_and_hashes_as_sealed() -> None:
    started = sample_cot_events()[0]
    assert isinstance(started, RunStarted) and started.upstream_traceparent is not None
    datum = cot_to_avro(started)
    del datum[payload_field("RUN_STARTED")]["upstream_traceparent"]
    old = fastavro.parse_schema(_schema_before_upstream_traceparent())
    body = io.BytesIO()
    fastavro.schemaless_writer(body, old, datum)
    body.seek(0)
    new = fastavro.parse_schema(load_schemas()["cot_event"])
    read = cot_from_avro(fastavro.schemaless_reader(body, old, new))  # type: ignore[arg-type]
    assert read == started.model_copy(update={"upstream_traceparent": None})
    # The chain's canonical form leaves the unset field out: the event hashes
    # exactly as it was sealed before the field existed ...
    assert "upstream_traceparent" not in json.loads(canonical_text(read))
    # ... and a recorded upstream context is sealed like any other field.
    assert event_hash(read) != event_hash(started)


def test_upstream_traceparent_must_be_a_w3c_traceparent() -> None:
    started = sample_cot_events()[0]
    with pytest.raises(ValidationError):
        RunStarted.model_validate(
            {**started.model_dump(), "upstream_traceparent": "00-not-a-traceparent-01"}
        )
