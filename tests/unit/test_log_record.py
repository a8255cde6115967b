"""The chain-of-thought log record users expect <-> CotEvent, without loss."""

from __future__ import annotations

import copy
import hashlib
import io
import json
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from flightrec.contracts.avro_mapping import cot_to_avro
from flightrec.contracts.chain import canonical_text
from flightrec.contracts.codec import Codec
from flightrec.contracts.compatibility import check_compatibility, parse_avro
from flightrec.contracts.events import (
    GENESIS_HASH,
    CotEventBase,
    GenAiRef,
    Thought,
    ToolCall,
    canonical_json,
)
from flightrec.contracts.log_record import (
    IMPORTED_TOPIC,
    UNKNOWN_VERSION,
    LogRecord,
    from_log_record,
    to_log_record,
)
from flightrec.contracts.rules import rule_set_for
from flightrec.contracts.schema_files import contract, load_schemas, schema_text, subject_for
from flightrec.contracts.settings import Settings
from flightrec.testing.offline import offline_registry
from flightrec.testing.samples import sample_cot_events

DOCUMENT = {
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "agent_id": "loan-officer",
    "timestamp": "2025-03-14T09:26:53.589793Z",
    "interaction_type": "TOOL_CALL",
    "step_index": 3,
    "thought_process": {
        "reasoning": "need a bureau score",
        "tool_invoked": "credit_bureau",
        "tool_input": {"national_id": "hmac-sha256:k1:cd"},
    },
    "model_config": {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.2},
    "gen_ai.usage.input_tokens": 812,
    "gen_ai.usage.output_tokens": 64,
}


def test_document_round_trips_through_the_record() -> None:
    record = LogRecord.from_json(json.dumps(DOCUMENT))
    assert record.thought_process.tool_invoked == "credit_bureau"
    assert record.model_settings.temperature == 0.2
    assert record.input_tokens == 812
    assert record.to_json() == DOCUMENT


def test_unknown_field_in_document_is_rejected() -> None:
    with pytest.raises(ValueError):
        LogRecord.from_json({**DOCUMENT, "surprise": 1})


@pytest.mark.parametrize("event", sample_cot_events(), ids=lambda e: e.kind)
def test_every_event_survives_record_and_back(event: CotEventBase) -> None:
    record = to_log_record(event)
    assert record.trace_id == event.trace_id
    assert record.agent_id == event.agent
    assert record.step_index == event.step
    assert record.interaction_type == event.kind  # type: ignore[attr-defined]
    # Through JSON text too, as the record is stored and shipped.
    text = json.dumps(record.to_json())
    assert from_log_record(LogRecord.from_json(text)) == event


def test_tool_call_fields_land_in_thought_process() -> None:
    call = sample_cot_events()[3]
    record = to_log_record(call).to_json()
    assert record["thought_process"]["tool_invoked"] == "credit_bureau"
    assert record["thought_process"]["tool_input"] == {"national_id": "hmac-sha256:k1:cd"}
    model_call = to_log_record(sample_cot_events()[1]).to_json()
    assert model_call["model_config"] == {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "temperature": 0.2,
    }
    assert model_call["gen_ai.usage.input_tokens"] == 812
    assert model_call["gen_ai.usage.output_tokens"] == 64


def test_non_canonical_and_null_tool_input_kept_exactly() -> None:
    call = sample_cot_events()[3]
    for raw in ('{"b": 1, "a": 2}', "null"):
        event = call.model_copy(update={"arguments_json": raw})
        assert canonical_json(json.loads(raw)) != raw or raw == "null"
        assert from_log_record(to_log_record(event)) == event


# ------------------------------------------------------- records from elsewhere


def _imported(document: dict[str, Any]) -> Any:
    return from_log_record(LogRecord.from_json(document))


def test_document_without_extension_becomes_a_tool_call() -> None:
    event = _imported(DOCUMENT)
    assert isinstance(event, ToolCall)
    assert (event.tool, event.reasoning) == ("credit_bureau", "need a bureau score")
    assert event.arguments_json == canonical_json({"national_id": "hmac-sha256:k1:cd"})
    assert event.call_id == "call-3"
    # TOOL_CALL has no model fields of its own: the envelope's gen_ai holds them.
    assert event.gen_ai == GenAiRef(
        provider_name="openai",
        request_model="gpt-4o-mini",
        request_temperature=0.2,
        usage_input_tokens=812,
        usage_output_tokens=64,
    )
    # Derived envelope: deterministic, and marked as not recorded by flightrec.
    trace = DOCUMENT["trace_id"]
    assert event.event_id == f"{trace}:3:TOOL_CALL"
    assert event.span_id == hashlib.sha256(f"{trace}:3".encode()).hexdigest()[:16]
    assert (event.attempt, event.seq, event.step) == (1, 3, 3)
    assert event.source.topic == IMPORTED_TOPIC
    assert event.agent_version == event.prompt_version == UNKNOWN_VERSION
    assert event.prev_hash == GENESIS_HASH
    assert _imported(copy.deepcopy(DOCUMENT)) == event


def test_imported_document_comes_back_unchanged() -> None:
    event = _imported(DOCUMENT)
    assert to_log_record(event).to_json() == DOCUMENT


async def test_document_through_avro_and_back() -> None:
    codec = Codec(Settings(), offline_registry(Settings()), contracts=("cot_event",))
    await codec.start()
    event = _imported(DOCUMENT)
    decoded = await codec.decode_cot(await codec.encode_cot(event))
    assert decoded == event
    assert to_log_record(decoded).to_json() == DOCUMENT


def test_thought_document_keeps_its_model_config() -> None:
    document = {
        **DOCUMENT,
        "interaction_type": "THOUGHT",
        "thought_process": {"reasoning": "DTI is high", "tool_invoked": None, "tool_input": None},
        "gen_ai.usage.output_tokens": None,
    }
    event = _imported(document)
    assert isinstance(event, Thought)
    assert event.reasoning == "DTI is high"
    assert event.gen_ai == GenAiRef(
        provider_name="openai",
        request_model="gpt-4o-mini",
        request_temperature=0.2,
        usage_input_tokens=812,
    )
    assert to_log_record(event).to_json() == document


def test_document_without_model_data_has_no_gen_ai() -> None:
    document = {
        key: value
        for key, value in DOCUMENT.items()
        if key not in ("model_config", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
    }
    event = _imported(document)
    assert event.gen_ai is None
    assert "gen_ai" not in json.loads(canonical_text(event))


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("DECISION", "flightrec.outcome"),
        ("TOOL_RESULT", "flightrec.status"),
        ("MODEL_CALL", "flightrec.request_hash"),
    ],
)
def test_kind_the_shape_cannot_express_names_what_is_missing(kind: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        _imported({**DOCUMENT, "interaction_type": kind})


def test_missing_document_field_is_named_by_its_place() -> None:
    document = {**DOCUMENT, "thought_process": {"reasoning": "r"}}
    with pytest.raises(ValueError, match=r"thought_process\.tool_invoked"):
        _imported(document)
    with pytest.raises(ValueError, match="not a CoT kind"):
        _imported({**DOCUMENT, "interaction_type": "SMALL_TALK"})


def test_own_model_fields_win_over_the_envelope() -> None:
    events = sample_cot_events()
    model_call = events[1]
    record = to_log_record(model_call)
    assert record.flightrec is not None and "gen_ai" not in record.flightrec
    # A MODEL_CALL document puts model data in its own fields, never in gen_ai.
    assert from_log_record(record).gen_ai is None
    # gen_ai on a kind with its own fields: the record shows the kind's own, the
    # rest of gen_ai travels in the extension, nothing is lost.
    odd = model_call.model_copy(
        update={"gen_ai": GenAiRef(request_model="other", usage_input_tokens=1)}
    )
    record = to_log_record(odd)
    assert record.model_settings.model == "gpt-4o-mini"
    assert record.flightrec is not None
    assert record.flightrec["gen_ai"] == {"request_model": "other", "usage_input_tokens": 1}
    assert from_log_record(LogRecord.from_json(json.dumps(record.to_json()))) == odd


@pytest.mark.parametrize(
    "ref",
    [GenAiRef(), GenAiRef(provider_name="openai"), GenAiRef(request_temperature=0.0)],
    ids=["empty", "provider", "temperature"],
)
@pytest.mark.parametrize("index", range(8), ids=[e.kind for e in sample_cot_events()])  # type: ignore[attr-defined]
def test_every_kind_with_gen_ai_survives_record_and_back(index: int, ref: GenAiRef) -> None:
    event = sample_cot_events()[index].model_copy(update={"gen_ai": ref})
    text = json.dumps(to_log_record(event).to_json())
    assert from_log_record(LogRecord.from_json(text)) == event


# ------------------------------------------------------------ schema evolution


def _schema_before_gen_ai() -> dict[str, Any]:
    """The CoT schema as it was before ``gen_ai`` (the field removed, nothing else)."""
    schema = copy.deepcopy(load_schemas()["cot_event"])
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "gen_ai"]
    return schema


def test_gen_ai_is_a_backward_transitive_evolution() -> None:
    new = parse_avro(schema_text(load_schemas()["cot_event"]))
    old = parse_avro(schema_text(_schema_before_gen_ai()))
    report = check_compatibility(new, [(1, old)], "BACKWARD_TRANSITIVE")
    assert report.compatible, report.messages


def test_unset_gen_ai_leaves_the_chain_hash_alone() -> None:
    for event in sample_cot_events():
        assert event.gen_ai is None
        assert "gen_ai" not in json.loads(canonical_text(event))


@pytest.mark.parametrize("event", sample_cot_events(), ids=lambda e: e.kind)
async def test_event_written_with_the_old_schema_reads_with_the_new(event: CotEventBase) -> None:
    settings = Settings()
    subject = subject_for(contract("cot_event"), settings)
    # The registered history: the old schema first, then the current one.
    client = SchemaRegistryClient.new_client({"url": "mock://evolution"})
    old = _schema_before_gen_ai()
    rules = rule_set_for("cot_event", settings)
    old_id, new_id = (
        client.register_schema(subject, Schema(schema_text(schema), "AVRO", rule_set=rules))
        for schema in (old, load_schemas()["cot_event"])
    )
    codec = Codec(settings, client, contracts=("cot_event",))
    await codec.start()
    registered = codec.registered("cot_event")
    assert registered is not None and registered.schema_id == new_id != old_id
    # Bytes as a writer of the old schema produced them (Confluent framing).
    datum = cot_to_avro(event)
    del datum["gen_ai"]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(old), datum)
    data = b"\x00" + old_id.to_bytes(4, "big") + body.getvalue()
    assert await codec.decode_cot(data) == event


def test_tool_input_recorded_with_a_nan_is_kept_exactly() -> None:
    # Canonical JSON refuses NaN today; arguments recorded before it did stay readable.
    event = sample_cot_events()[3].model_copy(update={"arguments_json": '{"x":NaN}'})
    assert from_log_record(to_log_record(event)) == event
