"""Compatibility levels map onto Avro's checker the way Confluent defines them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flightrec.contracts.compatibility import (
    InvalidSchemaError,
    ParsedSchema,
    check_compatibility,
    describe_location,
    parse_avro,
)


def rec(*fields: dict[str, Any]) -> ParsedSchema:
    return parse_avro(json.dumps({"type": "record", "name": "R", "fields": list(fields)}))


A = {"name": "a", "type": "int"}
B = {"name": "b", "type": "int"}
B_DEFAULT = {"name": "b", "type": "int", "default": 0}


def test_layout_and_key_order_do_not_change_the_canonical_text() -> None:
    one = parse_avro('{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}')
    two = parse_avro('{"fields":[{"type":"int","name":"a"}],\n "name":"R","type":"record"}')
    assert one.canonical == two.canonical


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{nope", "not JSON"),
        (
            '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "integer"}]}',
            "integer",
        ),
        (
            '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", "default": "x"}]}',
            "efault",
        ),
        ('{"type": "enum", "name": "E", "symbols": ["A", "A"]}', "Invalid schema"),
    ],
)
def test_invalid_schemas_are_refused_with_the_reason(text: str, needle: str) -> None:
    with pytest.raises(InvalidSchemaError, match=needle):
        parse_avro(text)


def test_references_supply_named_types() -> None:
    money = json.dumps(
        {"type": "record", "name": "Money", "fields": [{"name": "cents", "type": "long"}]}
    )
    loan = json.dumps(
        {"type": "record", "name": "Loan", "fields": [{"name": "amount", "type": "Money"}]}
    )
    with pytest.raises(InvalidSchemaError):
        parse_avro(loan)
    assert parse_avro(loan, [money]).json["name"] == "Loan"


@pytest.mark.parametrize(
    ("level", "old", "new", "compatible"),
    [
        ("BACKWARD", [A], [A, B], False),  # new reader lacks a default for b
        ("BACKWARD", [A], [A, B_DEFAULT], True),
        ("BACKWARD", [A, B], [A], True),  # a reader may ignore fields
        ("FORWARD", [A, B], [A], False),  # old reader needs b
        ("FORWARD", [A], [A, B], True),
        ("FULL", [A], [A, B], False),
        ("FULL", [A], [A, B_DEFAULT], True),
        ("FULL", [A, B_DEFAULT], [A], True),
        ("NONE", [A], [{"name": "a", "type": "string"}], True),
    ],
)
def test_levels(level: str, old: list[Any], new: list[Any], compatible: bool) -> None:
    report = check_compatibility(rec(*new), [(1, rec(*old))], level)
    assert report.compatible is compatible
    assert bool(report.messages) is not compatible


def test_transitive_reaches_past_the_latest_version() -> None:
    v1, v2 = rec(A), rec(B_DEFAULT)
    v3 = rec(B_DEFAULT, {"name": "a", "type": "string", "default": "x"})
    earlier = [(1, v1), (2, v2)]
    assert check_compatibility(v3, earlier, "BACKWARD").compatible
    report = check_compatibility(v3, earlier, "BACKWARD_TRANSITIVE")
    assert not report.compatible
    assert "{oldSchemaVersion: 1}" in report.messages
    assert "{compatibility: 'BACKWARD_TRANSITIVE'}" in report.messages
    assert any("TYPE_MISMATCH" in m and "field 'a'" in m for m in report.messages)


A_DEFAULT = {"name": "a", "type": "int", "default": 0}
A_STRING_DEFAULT = {"name": "a", "type": "string", "default": "x"}

# v1 -> v2 -> v3 where v3 is compatible with v2 but not with v1 under the level.
TRANSITIVE_CHAINS = [
    # v2 drops a; v3 brings a back as a string: v3 reads v2 data (a defaults),
    # not v1 data (an int is not a string).
    ("BACKWARD", [A], [B_DEFAULT], [B_DEFAULT, A_STRING_DEFAULT], "TYPE_MISMATCH"),
    # v2 gives a a default, v3 drops a: v2 reads v3 data (a defaults), v1 cannot
    # (its a has no default). Every step is compatible both ways, hence FULL too.
    ("FORWARD", [A], [A_DEFAULT], [B_DEFAULT], "READER_FIELD_MISSING_DEFAULT_VALUE"),
    ("FULL", [A], [A_DEFAULT], [B_DEFAULT], "READER_FIELD_MISSING_DEFAULT_VALUE"),
]


@pytest.mark.parametrize(
    ("level", "v1", "v2", "v3", "kind"), TRANSITIVE_CHAINS, ids=[c[0] for c in TRANSITIVE_CHAINS]
)
def test_each_transitive_level_tests_every_earlier_version(
    level: str, v1: list[Any], v2: list[Any], v3: list[Any], kind: str
) -> None:
    transitive = f"{level}_TRANSITIVE"
    # The chain up to v2 is valid under both levels (a registry accepts it).
    assert check_compatibility(rec(*v2), [(1, rec(*v1))], transitive).compatible
    earlier = [(1, rec(*v1)), (2, rec(*v2))]
    assert check_compatibility(rec(*v3), earlier, level).compatible
    report = check_compatibility(rec(*v3), earlier, transitive)
    assert not report.compatible
    assert "{oldSchemaVersion: 1}" in report.messages
    assert f"{{compatibility: '{transitive}'}}" in report.messages
    assert any(kind in m and "field 'a'" in m for m in report.messages), report.messages


def test_messages_name_the_field() -> None:
    report = check_compatibility(rec(A, B), [(4, rec(A))], "BACKWARD")
    first = report.messages[0]
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in first
    assert "/fields/1 (field 'b')" in first


def test_describe_location() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [A, {"name": "m", "type": {"type": "map", "values": "int"}}],
    }
    assert describe_location(schema, "/fields/1/type/values") == "field 'm' type values"
    assert describe_location(schema, "/") == "the schema root"
