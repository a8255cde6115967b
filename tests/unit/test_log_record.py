"""The chain-of-thought log record users expect <-> CotEvent, without loss."""

from __future__ import annotations

import json

import pytest

from contracts.events import CotEventBase, canonical_json
from contracts.log_record import LogRecord, from_log_record, to_log_record
from contracts.samples import sample_cot_events

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
