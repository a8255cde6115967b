"""The chain-of-thought log record our users already expect, mapped to and from
:data:`~flightrec.contracts.events.CotEvent` without loss.

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

Model data. ``model_config`` and the token counts map to the kind's own
``gen_ai_*`` fields where the kind has them (``MODEL_CALL`` has all five,
``RUN_STARTED`` provider and model, ``RUN_COMPLETED`` the token counts), and
otherwise to the envelope's ``gen_ai`` (:class:`~flightrec.contracts.events.GenAiRef`),
so a ``TOOL_CALL`` that names its model keeps it. Whatever of ``gen_ai`` the
record shows no place for (the kind's own field took the slot) stays in
``flightrec.gen_ai``.

Records from elsewhere. A document without ``flightrec`` (or with only part of
it) still becomes an event; each missing field is derived, deterministically,
from what the document has:

=================  ==========================================================
``event_id``       ``"<trace_id>:<step_index>:<interaction_type>"``
``span_id``        first 16 hex of SHA-256 of ``"<trace_id>:<step_index>"``
``attempt``        ``1``
``seq``            ``step_index``
``agent_version``  ``"unknown"`` (:data:`UNKNOWN_VERSION`), ``prompt_version`` too
``source``         topic ``"imported"`` (:data:`IMPORTED_TOPIC`), partition 0,
                   offset 0, no key: the marker of an event that was not
                   recorded by flightrec
``prev_hash``      the genesis hash (the model default): an imported trace
                   carries no hash chain until it is sealed
``TOOL_CALL``      ``call_id`` ``"call-<step_index>"``, ``arguments_json`` the
                   canonical JSON of ``tool_input`` (``"null"`` when absent),
                   ``reasoning`` from ``thought_process.reasoning``
``THOUGHT``        ``reasoning`` from ``thought_process.reasoning``
=================  ==========================================================

A kind whose required data the shape cannot express (a ``DECISION`` has no
outcome in it, a ``TOOL_RESULT`` no status) raises ``ValueError`` naming the
missing fields. :func:`to_log_record` leaves ``flightrec`` out when the
document alone gives back the same event, so an imported document survives
document -> event -> document unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flightrec.contracts.avro_mapping import COT_KIND_MODELS
from flightrec.contracts.errors import UnrecordableError
from flightrec.contracts.events import (
    CotEvent,
    CotEventBase,
    GenAiRef,
    canonical_json,
    read_cot_event,
)

__all__ = [
    "IMPORTED_TOPIC",
    "UNKNOWN_VERSION",
    "LogRecord",
    "ModelConfig",
    "ThoughtProcess",
    "from_log_record",
    "to_log_record",
]

IMPORTED_TOPIC = "imported"
"""``source.topic`` of an event built from a log record without ``flightrec``."""

UNKNOWN_VERSION = "unknown"
"""``agent_version`` and ``prompt_version`` of such an event."""

_INPUT_TOKENS = "gen_ai.usage.input_tokens"
_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"

# The GenAiRef fields, in record order; a kind's own field of the same meaning
# is named "gen_ai_" + the GenAiRef field.
_GEN_AI_SLOTS: tuple[str, ...] = tuple(GenAiRef.model_fields)

# Event fields the record shape supplies itself: never derived, never missing
# because of the record (named after their place in the document).
_DOCUMENT_PLACES: Mapping[str, str] = {
    "tool": "thought_process.tool_invoked",
    "reasoning": "thought_process.reasoning",
    "arguments_json": "thought_process.tool_input",
}


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

    def gen_ai_values(self) -> dict[str, Any]:
        """The record's model data by :class:`~flightrec.contracts.events.GenAiRef` field name."""
        config = self.model_settings
        return {
            "provider_name": config.provider,
            "request_model": config.model,
            "request_temperature": config.temperature,
            "usage_input_tokens": self.input_tokens,
            "usage_output_tokens": self.output_tokens,
        }


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _kind_model(kind: str) -> type[CotEventBase]:
    model = COT_KIND_MODELS.get(kind)
    if model is None:
        raise ValueError(
            f"log record interaction_type {kind!r} is not a CoT kind; known: {list(COT_KIND_MODELS)}"
        )
    return model


def _own_slots(model: type[CotEventBase]) -> frozenset[str]:
    """The GenAiRef slots the kind has fields of its own for."""
    return frozenset(s for s in _GEN_AI_SLOTS if f"gen_ai_{s}" in model.model_fields)


def _derived_envelope(record: LogRecord) -> dict[str, Any]:
    """Envelope fields of an event built from ``record`` alone (JSON form)."""
    trace, step = record.trace_id, record.step_index
    span = hashlib.sha256(f"{trace}:{step}".encode()).hexdigest()[:16]
    return {
        "event_id": f"{trace}:{step}:{record.interaction_type}",
        "span_id": span,
        "attempt": 1,
        "seq": step,
        "agent_version": UNKNOWN_VERSION,
        "prompt_version": UNKNOWN_VERSION,
        "source": {"topic": IMPORTED_TOPIC, "partition": 0, "offset": 0, "key": None},
    }


def _derived_payload(record: LogRecord, given: Mapping[str, Any]) -> dict[str, Any]:
    """Kind fields the record shape implies (beyond those it names directly,
    and those ``given`` already holds)."""
    if record.interaction_type != "TOOL_CALL":
        return {}
    derived: dict[str, Any] = {"call_id": f"call-{record.step_index}"}
    if "arguments_json" not in given:
        derived["arguments_json"] = canonical_json(record.thought_process.tool_input)
    return derived


def _canonical_or_none(value: Any) -> str | None:
    # Arguments recorded before canonical JSON refused NaN may hold one: such
    # text is not canonical today, so its exact bytes are kept.
    try:
        return canonical_json(value)
    except UnrecordableError:
        return None


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
        if tool_input is None or _canonical_or_none(tool_input) != raw:
            # JSON null, or text that is not canonical: keep the exact bytes
            rest["arguments_json"] = raw
    values = _record_gen_ai(type(event), rest)
    record = LogRecord(
        trace_id=data["trace_id"],
        agent_id=data["agent"],
        timestamp=_timestamp(event.ts),
        interaction_type=data["kind"],
        step_index=data["step"],
        thought_process=ThoughtProcess(
            reasoning=reasoning, tool_invoked=tool, tool_input=tool_input
        ),
        model_settings=ModelConfig(
            provider=values["provider_name"],
            model=values["request_model"],
            temperature=values["request_temperature"],
        ),
        input_tokens=values["usage_input_tokens"],
        output_tokens=values["usage_output_tokens"],
    )
    if _document_implies(record, rest, event):
        return record
    return record.model_copy(update={"flightrec": rest})


def _record_gen_ai(model: type[CotEventBase], rest: dict[str, Any]) -> dict[str, Any]:
    """Take the record's model data out of ``rest`` (the event's JSON fields).

    Each slot comes from the kind's own field when it has one, else from the
    envelope's ``gen_ai``. What of ``gen_ai`` the record cannot show stays in
    ``rest["gen_ai"]``; so does an empty ``gen_ai`` (set, but nothing in it
    reaches the record), or :func:`from_log_record` would give back ``None``.
    """
    own = _own_slots(model)
    ref: dict[str, Any] | None = rest.pop("gen_ai", None)
    left = dict(ref or {})
    values: dict[str, Any] = {}
    for slot in _GEN_AI_SLOTS:
        values[slot] = rest.pop(f"gen_ai_{slot}") if slot in own else left.pop(slot, None)
    left = {k: v for k, v in left.items() if v is not None}
    shown = any(values[s] is not None for s in _GEN_AI_SLOTS if s not in own)
    if ref is not None and (left or not shown):
        rest["gen_ai"] = left
    return values


def _document_implies(record: LogRecord, rest: Mapping[str, Any], event: CotEventBase) -> bool:
    """True when ``record`` without ``flightrec`` gives back ``event``."""
    derived = _derived_envelope(record)
    # Cheap test first: events flightrec recorded itself never have derived ids.
    if any(rest.get(name) != value for name, value in derived.items()):
        return False
    try:
        return from_log_record(record) == event
    except ValueError:  # pydantic's ValidationError is a ValueError too
        return False


def from_log_record(record: LogRecord) -> CotEvent:
    """The CoT event of a log record, written by :func:`to_log_record` or elsewhere.

    Fields the record lacks are derived as the module docstring describes.
    Raises ``ValueError`` naming the missing fields when the kind needs data
    that the record shape cannot hold and no ``flightrec`` extension gives,
    and ``ValidationError`` (a ``ValueError``) for values the event refuses.
    """
    model = _kind_model(record.interaction_type)
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
    _place_gen_ai(model, record, data)
    for name, value in {**_derived_envelope(record), **_derived_payload(record, data)}.items():
        data.setdefault(name, value)
    missing = [
        _DOCUMENT_PLACES.get(name, f"flightrec.{name}")
        for name, info in model.model_fields.items()
        if info.is_required() and name not in data
    ]
    if missing:
        raise ValueError(
            f"a {record.interaction_type} log record needs {', '.join(missing)}: "
            "the record shape has no place for them, and no flightrec extension gives them"
        )
    return read_cot_event(data)


def _place_gen_ai(model: type[CotEventBase], record: LogRecord, data: dict[str, Any]) -> None:
    """Put the record's model data in the kind's own fields, else in ``gen_ai``."""
    own = _own_slots(model)
    extension = data.pop("gen_ai", None)
    ref: dict[str, Any] = dict(extension or {})
    for slot, value in record.gen_ai_values().items():
        if value is None:
            continue
        if slot in own:
            data[f"gen_ai_{slot}"] = value
        else:
            ref[slot] = value
    if ref or extension is not None:
        data["gen_ai"] = ref
