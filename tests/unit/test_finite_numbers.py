"""The generated finite-number rules on shapes beyond a flat record: nested and
reused records, optional values, lists of numbers and of records, a recursive
record. Each rule runs in the real codec on both CEL engines: NaN and
infinity fail it with its field named, nulls and finite numbers pass."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from pydantic import BaseModel

from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import RuleViolationError
from flightrec.contracts.finite_numbers import finite_number_checks
from flightrec.contracts.model_schema import avro_schema_for
from flightrec.contracts.rules import finite_number_rules
from flightrec.contracts.schema_files import ContractSpec
from flightrec.contracts.settings import Settings
from flightrec.testing import MemoryProducer, offline_registry

SETTINGS = Settings()


class Point(BaseModel):
    lat: float
    lon: float | None = None


class Line(BaseModel):
    price: float
    quantity: int = 1


class Shape(BaseModel):
    shape_id: str
    origin: Point
    corner: Point | None = None  # the same record again: named, not redefined
    scores: list[float] = []
    lines: list[Line] = []
    ratio: float | None = None
    grid: list[list[float]] = []


class Node(BaseModel):
    value: float
    child: Node | None = None


SCHEMA = avro_schema_for(Shape, namespace="io.test.shapes")
SPEC = ContractSpec.for_model(
    "shapes.input",
    "shapes.in",
    SCHEMA,
    Shape,
    rules=finite_number_rules(SCHEMA),
    dlq_topic="shapes.in.dlq",
    key_field="shape_id",
)
GOOD: dict[str, Any] = {
    "shape_id": "s-1",
    "origin": {"lat": 1.5, "lon": None},
    "corner": {"lat": -2.0, "lon": 3.0},
    "scores": [0.0, 1e308, -1e308],
    "lines": [{"price": 9.99}, {"price": 0.0, "quantity": 2}],
    "ratio": None,
    "grid": [[1.0], [], [2.0, 3.0]],
}


def test_every_floating_point_field_gets_a_check() -> None:
    assert [c.path for c in finite_number_checks(SCHEMA)] == [
        "origin.lat",
        "origin.lon",
        "corner.lat",
        "corner.lon",
        "scores",
        "lines.price",
        "ratio",
        "grid",
    ]
    assert [r.name for r in finite_number_rules(SCHEMA, prefix="shape_")][:2] == [
        "shape_origin_lat_finite",
        "shape_origin_lon_finite",
    ]


def test_a_recursive_record_is_checked_down_to_its_first_repetition() -> None:
    schema = avro_schema_for(Node, namespace="io.test.nodes")
    assert [c.path for c in finite_number_checks(schema)] == ["value"]


@pytest.fixture(scope="module")
def codecs() -> dict[str, Codec]:
    client = offline_registry(SETTINGS, [SPEC])
    result = {
        engine: Codec(
            SETTINGS,
            client,
            cel_engine=engine,
            contracts=(),
            agent_contracts=[SPEC],
            dlq_producer=MemoryProducer(),
        )
        for engine in ("fast", "celpy")
    }
    for codec in result.values():
        codec.start_sync()
    return result


def _with(update: dict[str, Any]) -> Shape:
    return Shape.model_validate({**GOOD, **update})


BAD: list[tuple[dict[str, Any], str]] = [
    ({"origin": {"lat": math.nan}}, "origin.lat"),
    ({"origin": {"lat": 1.0, "lon": math.inf}}, "origin.lon"),
    ({"corner": {"lat": -math.inf}}, "corner.lat"),
    ({"scores": [1.0, math.nan]}, "scores"),
    ({"lines": [{"price": 1.0}, {"price": math.inf}]}, "lines.price"),
    ({"ratio": math.nan}, "ratio"),
    ({"grid": [[1.0], [2.0, -math.inf]]}, "grid"),
]


@pytest.mark.parametrize("engine", ["fast", "celpy"])
def test_finite_numbers_and_nulls_pass(codecs: dict[str, Codec], engine: str) -> None:
    codec = codecs[engine]
    for update in ({}, {"corner": None, "ratio": 0.25, "scores": [], "lines": []}):
        data = asyncio.run(codec.encode("shapes.input", _with(update)))
        assert codec.decode_sync("shapes.input", data) == _with(update)


@pytest.mark.parametrize("engine", ["fast", "celpy"])
@pytest.mark.parametrize(("update", "field"), BAD, ids=[b[1] for b in BAD])
def test_nan_and_infinity_fail_the_rule_of_their_field(
    codecs: dict[str, Codec], engine: str, update: dict[str, Any], field: str
) -> None:
    with pytest.raises(RuleViolationError) as info:
        asyncio.run(codecs[engine].encode("shapes.input", _with(update)))
    assert info.value.context["field"] == field
    assert info.value.context["rule"] == f"{field.replace('.', '_')}_finite"


def test_a_map_of_numbers_is_checked_value_by_value() -> None:
    # Team models cannot declare maps (avro_schema_for refuses dict); a schema file can.
    import cel
    import celpy
    from confluent_kafka.schema_registry.rules.cel.cel_executor import msg_to_cel

    schema = {
        "type": "record",
        "name": "Rates",
        "fields": [{"name": "rates", "type": {"type": "map", "values": "double"}}],
    }
    (check,) = finite_number_checks(schema)
    assert check.path == "rates"
    env = celpy.Environment()
    program = env.program(env.compile(check.expr))
    for rates, finite in [
        ({"a": 1.0, "b": -2.5}, True),
        ({}, True),
        ({"a": 1.0, "b": math.nan}, False),
    ]:
        message = {"rates": rates}
        assert bool(cel.compile(check.expr).execute(cel.Context({"message": message}))) is finite
        assert bool(program.evaluate({"message": msg_to_cel(message)})) is finite
