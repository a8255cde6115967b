"""The chain-of-thought log record our users already expect, mapped to and from
:data:`~contracts.events.CotEvent` without loss.

The record (one JSON document per event)::

    {
      "trace_id": "...", "agent_id": "loan-officer", "timestamp": "2025-...Z",
      "interaction_type": "TOOL_CALL", "step_index": 3,
      "thought_process": {"reasoning": ..., "tool_invoked": ..., "tool_input": {...}},
      "model_config": {"provider": ..., "model": ..., "temperature": ...},
      "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 64,
      "flightrec": {... every other field of the event ...}
    }

Token counts use the OpenTelemetry GenAI attribute names. Fields of the event
that the record shape has no place for (event id, span ids, hash chain,
source, kind-specific details) travel in the ``flightrec`` object, so
``from_log_record(to_log_record(e)) == e`` for every event of every kind.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import CotEvent, CotEventBase, canonical_json, cot_event_adapter

__all__ = ["LogRecord", "ModelConfig", "ThoughtProcess", "from_log_record", "to_log_record"]

_INPUT_TOKENS = "gen_ai.usage.input_tokens"
_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"


class ThoughtProcess(BaseModel):
    """What the agent was thinking, and the tool it invoked with which input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reasoning: str | None = None
    tool_invoked: str | None = None
    tool_input: Any = None


class ModelConfig(BaseModel):
    """The model behind the step (``gen_ai.provider.name``, ``gen_ai.request.model``...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str | None = None
    model: str | None = None
    temperature: float | None = None


class LogRecord(BaseModel):
    """One chain-of-thought log record (the shape of the JSON document)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    trace_id: str
    agent_id: str
    timestamp: str = Field(description="ISO 8601, UTC, microseconds")
    interaction_type: str
    step_index: int
    thought_process: ThoughtProcess = ThoughtProcess()
    # "model_config" is pydantic's own attribute name: stored as model_settings.
    model_settings: ModelConfig = Field(default=ModelConfig(), alias="model_config")
    input_tokens: int | None = Field(default=None, alias=_INPUT_TOKENS)
    output_tokens: int | None = Field(default=None, alias=_OUTPUT_TOKENS)
    flightrec: dict[str, Any] | None = Field(
        default=None, description="the event's other fields, for a lossless round trip"
    )

    @classmethod
    def from_json(cls, document: str | dict[str, Any]) -> LogRecord:
        """Parse a JSON document (text or parsed) of the record shape."""
        data = json.loads(document) if isinstance(document, str) else document
        return cls.model_validate(data)

    def to_json(self) -> dict[str, Any]:
        """The JSON document (field names as users see them; absent extension left out)."""
        data = self.model_dump(by_alias=True, mode="json")
        if data.get("flightrec") is None:
            data.pop("flightrec", None)
        return data


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_log_record(event: CotEventBase) -> LogRecord:
    """The log record of a CoT event (lossless: see :func:`from_log_record`)."""
    data = event.model_dump(mode="json")
    rest = dict(data)
    for name in ("trace_id", "agent", "ts", "kind", "step"):
        rest.pop(name)
    reasoning = rest.pop("reasoning", None)
    tool = rest.pop("tool", None)
    tool_input: Any = None
    if "arguments_json" in rest:
        raw = rest.pop("arguments_json")
        tool_input = json.loads(raw)
        if tool_input is None or canonical_json(tool_input) != raw:
            # JSON null, or text that is not canonical: keep the exact bytes
            rest["arguments_json"] = raw
    provider = rest.pop("gen_ai_provider_name", None)
    model = rest.pop("gen_ai_request_model", None)
    temperature = rest.pop("gen_ai_request_temperature", None)
    input_tokens = rest.pop("gen_ai_usage_input_tokens", None)
    output_tokens = rest.pop("gen_ai_usage_output_tokens", None)
    return LogRecord(
        trace_id=data["trace_id"],
        agent_id=data["agent"],
        timestamp=_timestamp(event.ts),
        interaction_type=data["kind"],
        step_index=data["step"],
        thought_process=ThoughtProcess(
            reasoning=reasoning, tool_invoked=tool, tool_input=tool_input
        ),
        model_settings=ModelConfig(provider=provider, model=model, temperature=temperature),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        flightrec=rest,
    )


def from_log_record(record: LogRecord) -> CotEvent:
    """The CoT event of a log record written by :func:`to_log_record`.

    Raises ``ValidationError`` when the record lacks what the event needs
    (a record from another system without the ``flightrec`` extension).
    """
    data: dict[str, Any] = dict(record.flightrec or {})
    data.update(
        trace_id=record.trace_id,
        agent=record.agent_id,
        ts=record.timestamp,
        kind=record.interaction_type,
        step=record.step_index,
    )
    thought = record.thought_process
    if thought.reasoning is not None:
        data["reasoning"] = thought.reasoning
    if thought.tool_invoked is not None:
        data["tool"] = thought.tool_invoked
    if thought.tool_input is not None and "arguments_json" not in data:
        data["arguments_json"] = canonical_json(thought.tool_input)
    config = record.model_settings
    for name, value in (
        ("gen_ai_provider_name", config.provider),
        ("gen_ai_request_model", config.model),
        ("gen_ai_request_temperature", config.temperature),
        ("gen_ai_usage_input_tokens", record.input_tokens),
        ("gen_ai_usage_output_tokens", record.output_tokens),
    ):
        if value is not None:
            data[name] = value
    return cot_event_adapter.validate_python(data)
