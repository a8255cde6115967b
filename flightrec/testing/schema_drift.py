"""Drift between the pydantic models and the Avro schemas, for the drift tests.

:func:`schema_drift` compares a model with its (expanded) Avro record field by
field: name, nullability, type (recursively for nested models, enums against
``Literal`` symbols) and default. tests/unit/test_schema_drift.py runs it for
every model and every CoT kind.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = ["payload_field", "schema_drift"]


def payload_field(kind: str) -> str:
    """Name of the CoT record's field holding the payload of ``kind`` (``DECISION`` -> ``decision``)."""
    return kind.lower()


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
