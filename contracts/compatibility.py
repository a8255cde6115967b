"""Avro schema parsing and compatibility, decided by Apache Avro's own checker.

Every verdict comes from ``avro.compatibility.ReaderWriterCompatibilityChecker``
(the ``avro`` package); this module only chooses which schema reads which,
following Confluent's definitions of the levels:

* BACKWARD: the new schema reads data written with the previous one;
* FORWARD: the previous schema reads data written with the new one;
* FULL: both; the ``_TRANSITIVE`` variants test every earlier live version
  instead of only the latest; NONE tests nothing.

Parsing runs Avro's parser (names, types) and fastavro's (defaults must match
their type, which Avro's Python parser does not check), so a schema either
registry would refuse is refused here with a message naming the problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.name
import avro.schema
import fastavro
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

__all__ = [
    "COMPATIBILITY_LEVELS",
    "CompatibilityReport",
    "InvalidSchemaError",
    "ParsedSchema",
    "check_compatibility",
    "describe_location",
    "parse_avro",
]

COMPATIBILITY_LEVELS: frozenset[str] = frozenset(
    {
        "NONE",
        "BACKWARD",
        "FORWARD",
        "FULL",
        "BACKWARD_TRANSITIVE",
        "FORWARD_TRANSITIVE",
        "FULL_TRANSITIVE",
    }
)


class InvalidSchemaError(ValueError):
    """The schema text is not a valid Avro schema (HTTP 422, error code 42201)."""


@dataclass(frozen=True)
class ParsedSchema:
    """A validated Avro schema: the parsed object, its JSON, and a canonical text.

    ``canonical`` is the JSON with sorted keys and no whitespace, so two texts
    that differ only in layout or key order are the same schema (Confluent
    compares Avro schemas by their canonical string, not their bytes).
    """

    avro: avro.schema.Schema
    json: Any
    canonical: str


@dataclass(frozen=True)
class CompatibilityReport:
    """Outcome of testing one candidate against earlier versions."""

    compatible: bool
    messages: tuple[str, ...] = ()


def parse_avro(text: str, references: Sequence[str] = ()) -> ParsedSchema:
    """Parse and validate an Avro schema; ``references`` are the texts it refers to.

    Raises :class:`InvalidSchemaError` with a message saying what is wrong.
    """
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InvalidSchemaError(f"Invalid schema: not JSON ({exc})") from exc
    ref_data: list[Any] = []
    for ref in references:
        try:
            ref_data.append(json.loads(ref))
        except (TypeError, ValueError) as exc:
            raise InvalidSchemaError(f"Invalid schema: a reference is not JSON ({exc})") from exc
    try:
        # References are named types the schema uses; parse them into one
        # name space first so the schema can refer to them by name.
        names = avro.name.Names()
        for ref in ref_data:
            avro.schema.make_avsc_object(ref, names)
        parsed = avro.schema.make_avsc_object(data, names)
    except (avro.errors.AvroException, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidSchemaError(f"Invalid schema: {exc}") from exc
    try:
        named: dict[str, Any] = {}
        for ref in ref_data:
            fastavro.parse_schema(ref, named_schemas=named)
        fastavro.parse_schema(data, named_schemas=named)
    except Exception as exc:  # fastavro raises several unrelated types for bad input
        raise InvalidSchemaError(f"Invalid schema: {exc}") from exc
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return ParsedSchema(avro=parsed, json=data, canonical=canonical)


def _directions(level: str) -> tuple[bool, bool]:
    """(new reads old, old reads new) for a level."""
    base = level.removesuffix("_TRANSITIVE")
    return base in {"BACKWARD", "FULL"}, base in {"FORWARD", "FULL"}


def check_compatibility(
    candidate: ParsedSchema,
    earlier: Sequence[tuple[int, ParsedSchema]],
    level: str,
    *,
    transitive: bool | None = None,
) -> CompatibilityReport:
    """Test ``candidate`` against ``earlier`` ``(version, schema)`` pairs, oldest first.

    Non-transitive levels test the last pair only, unless ``transitive`` says
    otherwise (the compatibility-test endpoint picks its own version). Messages
    follow Confluent's ``details`` entries: error type, location, the field named,
    the old version and the level.
    """
    if level == "NONE" or not earlier:
        return CompatibilityReport(True)
    new_reads_old, old_reads_new = _directions(level)
    if transitive is None:
        transitive = level.endswith("_TRANSITIVE")
    targets = list(earlier) if transitive else [earlier[-1]]
    messages: list[str] = []
    # Newest first, as Confluent reports the nearest version that breaks.
    for version, old in reversed(targets):
        pairs: list[tuple[ParsedSchema, ParsedSchema, str]] = []
        if new_reads_old:
            pairs.append((candidate, old, "new"))
        if old_reads_new:
            pairs.append((old, candidate, "old"))
        for reader, writer, reader_side in pairs:
            checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
            result = checker.get_compatibility(reader.avro, writer.avro)
            if result.compatibility is SchemaCompatibilityType.compatible:
                continue
            kinds = ", ".join(sorted({i.name.upper() for i in result.incompatibilities}))
            locations = sorted(result.locations)
            where = "; ".join(f"{loc} ({describe_location(reader.json, loc)})" for loc in locations)
            detail = "; ".join(sorted(result.messages))
            messages.append(
                f"{{errorType:'{kinds}', description:'The {reader_side} schema as reader "
                f"cannot read data written with the {'old' if reader_side == 'new' else 'new'} "
                f"schema at {where}: {detail}', additionalInfo:'{detail}'}}"
            )
            messages.append(f"{{oldSchemaVersion: {version}}}")
            messages.append(f"{{oldSchema: '{old.canonical}'}}")
        if messages:
            break
    if not messages:
        return CompatibilityReport(True)
    messages.append(f"{{compatibility: '{level}'}}")
    return CompatibilityReport(False, tuple(messages))


def describe_location(schema: Any, location: str) -> str:
    """Name what a JSON-pointer-like location of Avro's checker points at.

    ``/fields/1/type`` in a record whose second field is ``amount`` becomes
    ``field 'amount' type``; unknown steps are kept as they are.
    """
    node: Any = schema
    parts: list[str] = []
    for step in [s for s in location.split("/") if s]:
        if isinstance(node, Mapping) and step in node:
            node = node[step]
            if step != "fields":
                parts.append(step)
            continue
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
            if isinstance(node, Mapping) and "name" in node and "type" in node:
                parts.append(f"field '{node['name']}'")
            else:
                parts.append(f"branch {step}")
            continue
        parts.append(step)
    return " ".join(parts) if parts else "the schema root"
