"""Pydantic models <-> Avro datums (the dicts fastavro writes and reads).

The CoT schema holds every kind in one record: the envelope fields, ``kind``,
and one nullable payload field per kind (``decision`` for ``DECISION``...), of
which exactly the one named after the kind is set. Nullable payload fields
rather than a union of records: a ``["null", Record]`` union is resolved by a
``None`` check, whereas a union of eight records makes the writer try branches,
and CEL rules can address ``message.decision.reasons`` directly.

:func:`schema_drift` compares a model with its Avro record field by field (name,
nullability, type, default); the drift test runs it for every model and kind.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from flightrec.contracts.events import (
    COT_KINDS,
    CotEvent,
    CotEventBase,
    Decision,
    LoanApplication,
    LoanDecision,
    ModelCall,
    ReplayResult,
    RunCompleted,
    RunFailed,
    RunStarted,
    Thought,
    ToolCall,
    ToolResult,
    read_cot_event,
)

__all__ = [
    "COT_KIND_MODELS",
    "ENVELOPE_FIELDS",
    "application_from_avro",
    "application_to_avro",
    "cot_from_avro",
    "cot_to_avro",
    "decision_from_avro",
    "decision_to_avro",
    "payload_field",
    "replay_from_avro",
    "replay_to_avro",
    "schema_drift",
]

COT_KIND_MODELS: Mapping[str, type[CotEventBase]] = types.MappingProxyType(
    {
        "RUN_STARTED": RunStarted,
        "MODEL_CALL": ModelCall,
        "THOUGHT": Thought,
        "TOOL_CALL": ToolCall,
        "TOOL_RESULT": ToolResult,
        "DECISION": Decision,
        "RUN_FAILED": RunFailed,
        "RUN_COMPLETED": RunCompleted,
    }
)
"""The model of each CoT kind."""

ENVELOPE_FIELDS: frozenset[str] = frozenset(CotEventBase.model_fields)
"""Fields every CoT event carries at the top level of the Avro record."""

_PAYLOAD_FIELDS: Mapping[str, str] = types.MappingProxyType({k: k.lower() for k in COT_KINDS})
# The payload fields of each kind, precomputed: encoding is on the recorder's hot path.
_KIND_FIELDS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        kind: tuple(n for n in model.model_fields if n not in ENVELOPE_FIELDS and n != "kind")
        for kind, model in COT_KIND_MODELS.items()
    }
)


def payload_field(kind: str) -> str:
    """Name of the Avro field holding the payload of ``kind`` (``DECISION`` -> ``decision``)."""
    return _PAYLOAD_FIELDS[kind]


# ------------------------------------------------------------------------ CoT


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_micros(value: datetime) -> int:
    """Microseconds since the epoch, exactly (integer arithmetic, no float)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def cot_to_avro(event: CotEventBase) -> dict[str, Any]:
    """The Avro datum of a CoT event.

    ``ts`` is given as the long that ``timestamp-micros`` stores: fastavro
    converts an aware ``datetime`` at about half its whole-record write speed,
    and this runs for every event the recorder writes. Readers still get a
    ``datetime`` (the logical type), and :func:`cot_from_avro` takes either.
    """
    data = event.model_dump()
    data["ts"] = _epoch_micros(data["ts"])
    kind: str = data["kind"]
    payload = {name: data.pop(name) for name in _KIND_FIELDS[kind]}
    for field in _PAYLOAD_FIELDS.values():
        data[field] = None
    data[_PAYLOAD_FIELDS[kind]] = payload
    return data


def cot_from_avro(datum: Mapping[str, Any]) -> CotEvent:
    """The CoT event of an Avro datum (validated: a bad datum raises ``ValidationError``)."""
    kind = datum["kind"]
    data = {name: datum[name] for name in ENVELOPE_FIELDS if name in datum}
    ts = data.get("ts")
    if isinstance(ts, int):
        data["ts"] = _EPOCH + timedelta(microseconds=ts)
    payload = datum.get(_PAYLOAD_FIELDS[kind]) or {}
    data.update(payload)
    data["kind"] = kind
    return read_cot_event(data)


# ------------------------------------------------------------------ business


def application_to_avro(application: LoanApplication) -> dict[str, Any]:
    """The Avro datum of a loan application."""
    return application.model_dump()


def application_from_avro(datum: Mapping[str, Any]) -> LoanApplication:
    """The loan application of an Avro datum."""
    return LoanApplication.model_validate(dict(datum))


def decision_to_avro(decision: LoanDecision) -> dict[str, Any]:
    """The Avro datum of a loan decision."""
    return decision.model_dump()


def decision_from_avro(datum: Mapping[str, Any]) -> LoanDecision:
    """The loan decision of an Avro datum."""
    return LoanDecision.model_validate(dict(datum))


def replay_to_avro(result: ReplayResult) -> dict[str, Any]:
    """The Avro datum of a replay result."""
    return result.model_dump()


def replay_from_avro(datum: Mapping[str, Any]) -> ReplayResult:
    """The replay result of an Avro datum."""
    return ReplayResult.model_validate(dict(datum))


# --------------------------------------------------------------------- drift


def schema_drift(
    model: type[BaseModel], record: Mapping[str, Any], *, skip: frozenset[str] = frozenset()
) -> list[str]:
    """Differences between a pydantic model and an (expanded) Avro record schema.

    Compares field names, nullability, types (recursively for nested models,
    enums against ``Literal`` symbols) and defaults. An empty list means they
    agree. ``skip`` names model fields that live elsewhere in the record
    (the CoT envelope, ``kind``).
    """
    problems: list[str] = []
    where = record.get("name", "?")
    avro_fields = {f["name"]: f for f in record.get("fields", [])}
    model_fields = {n: f for n, f in model.model_fields.items() if n not in skip}
    for name in sorted(set(model_fields) - set(avro_fields)):
        problems.append(f"{where}.{name}: in the model, missing from the schema")
    for name in sorted(set(avro_fields) - set(model_fields)):
        problems.append(f"{where}.{name}: in the schema, missing from the model")
    for name in sorted(set(model_fields) & set(avro_fields)):
        info = model_fields[name]
        avro_field = avro_fields[name]
        path = f"{where}.{name}"
        problems.extend(_type_drift(path, info.annotation, avro_field["type"]))
        if info.default is not PydanticUndefined:
            expected: Any = info.default
        elif info.default_factory is not None:
            expected = info.default_factory()  # type: ignore[call-arg]
        else:
            expected = PydanticUndefined
        if expected is PydanticUndefined:
            if "default" in avro_field:
                problems.append(f"{path}: required in the model, default in the schema")
        elif "default" not in avro_field:
            problems.append(f"{path}: default {expected!r} in the model, none in the schema")
        elif avro_field["default"] != expected:
            problems.append(
                f"{path}: default {expected!r} in the model, {avro_field['default']!r} in the schema"
            )
    return problems


def _type_drift(path: str, annotation: Any, avro: Any) -> list[str]:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type_drift(path, get_args(annotation)[0], avro)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(get_args(annotation))
        if len(args) > 1 and all(isinstance(a, type) and issubclass(a, str) for a in args):
            # Text of several str types (a failure kind, or a legacy value read
            # back verbatim) is one Avro string.
            args = [str]
        avro_branches = avro if isinstance(avro, list) else [avro]
        avro_nullable = "null" in avro_branches
        if nullable != avro_nullable:
            return [f"{path}: nullable={nullable} in the model, {avro_nullable} in the schema"]
        rest = [b for b in avro_branches if b != "null"]
        if len(args) != 1 or len(rest) != 1:
            return [f"{path}: unions other than Optional[T] are not mapped"]
        return _type_drift(path, args[0], rest[0])
    if isinstance(avro, list):
        return [f"{path}: nullable in the schema, not in the model"]
    if origin is Literal:
        symbols = list(get_args(annotation))
        if not (isinstance(avro, dict) and avro.get("type") == "enum"):
            return [f"{path}: Literal in the model, {avro!r} in the schema"]
        if avro.get("symbols") != symbols:
            return [f"{path}: symbols {symbols} in the model, {avro.get('symbols')} in the schema"]
        return []
    if origin is list:
        if not (isinstance(avro, dict) and avro.get("type") == "array"):
            return [f"{path}: list in the model, {avro!r} in the schema"]
        return _type_drift(f"{path}[]", get_args(annotation)[0], avro["items"])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if not (isinstance(avro, dict) and avro.get("type") == "record"):
            return [f"{path}: model {annotation.__name__} in the model, {avro!r} in the schema"]
        return schema_drift(annotation, avro)
    expected = _PRIMITIVES.get(annotation)
    if expected is None:
        return [f"{path}: model type {annotation!r} has no Avro mapping"]
    actual = avro
    if isinstance(avro, dict):
        actual = (avro.get("type"), avro.get("logicalType"))
        if actual[1] is None:
            actual = avro.get("type")
    if actual != expected:
        return [f"{path}: {expected!r} expected for {annotation!r}, schema has {actual!r}"]
    return []


_PRIMITIVES: Mapping[Any, Any] = types.MappingProxyType(
    {
        str: "string",
        int: "long",
        float: "double",
        bool: "boolean",
        bytes: "bytes",
        datetime: ("long", "timestamp-micros"),
    }
)
