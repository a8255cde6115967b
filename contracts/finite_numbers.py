"""Where a record holds floating-point numbers, and the CEL condition that each is finite.

An Avro ``double`` holds NaN and infinity, and pydantic accepts them in a
``float`` field, but no decision can rest on them: ``NaN > 0.0`` is false and
``NaN < 0.0`` is false too, so every threshold check quietly passes or fails,
and they are not JSON. Every agent's input contract therefore gets one rule per
floating-point field (:func:`flightrec.contracts.rules.finite_number_rules`),
generated from its Avro schema: a record holding NaN or infinity breaks it and
is dead-lettered with the rule and the field named, on write and on read.

The condition is ``x - x == 0.0``: zero for every finite double, NaN for NaN
and for either infinity, and NaN equals nothing. It is chosen for what both CEL
engines do with NaN: cel-python answers an ordered comparison with NaN
(``x >= -1.7976931348623157e308``) with false, but the Rust engine of
:mod:`flightrec.contracts.cel_fast` fails it ("no such overload"), whereas
subtraction and equality behave alike on both.

The walk follows nested records (``address.lat``), arrays (``scores``, and
``items.price`` for a field of the records in a list: a list adds no index, as
for PII paths), maps, and ``["null", X]`` unions (a null passes: ``type(x) ==
null_type`` also holds on both engines, where ``x == null`` fails on cel-python
for a double). A recursive record is checked down to its first repetition; a
union of several non-null branches (which :func:`~flightrec.contracts.model_schema.avro_schema_for`
never writes) is not checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from flightrec.contracts.schema_files import avro_fullname

__all__ = ["FiniteCheck", "finite_number_checks"]

_FLOATING = frozenset({"double", "float"})


class FiniteCheck(NamedTuple):
    """The CEL condition (``expr``, on ``message``) that the number(s) at ``path`` are finite."""

    path: str
    expr: str


def finite_number_checks(schema: Mapping[str, Any]) -> tuple[FiniteCheck, ...]:
    """One check per floating-point field of the record ``schema``, in field order."""
    walk = _Walk()
    namespace = str(schema.get("namespace", ""))
    return tuple(
        FiniteCheck(*check) for check in walk.checks(schema, _At("message", "", namespace))
    )


class _At(NamedTuple):
    """Where the walk is: the CEL expression of the value, its field path, the
    enclosing namespace, the records being walked and the array nesting depth."""

    value: str
    path: str
    namespace: str
    within: frozenset[str] = frozenset()
    depth: int = 0


class _Walk:
    """One schema's walk; ``named`` holds the named types defined so far (Avro
    defines each once, at its first use, and names it afterwards)."""

    def __init__(self) -> None:
        self.named: dict[str, Mapping[str, Any]] = {}

    def checks(self, avro_type: Any, at: _At) -> Iterator[tuple[str, str]]:
        """(field path, condition) for every floating-point number ``avro_type`` holds."""
        if isinstance(avro_type, str):
            if avro_type in _FLOATING:
                yield at.path, f"{at.value} - {at.value} == 0.0"
                return
            # A named type defined earlier (a record used twice), or another primitive.
            avro_type = self.named.get(avro_fullname(avro_type, at.namespace))
        if isinstance(avro_type, list):
            yield from self._union(avro_type, at)
        elif isinstance(avro_type, Mapping):
            yield from self._complex(avro_type, at)

    def _union(self, branches: list[Any], at: _At) -> Iterator[tuple[str, str]]:
        others = [b for b in branches if b != "null"]
        if len(others) != 1:
            return
        for path, condition in self.checks(others[0], at):
            if len(others) < len(branches):
                condition = f"type({at.value}) == null_type || ({condition})"
            yield path, condition

    def _complex(self, avro_type: Mapping[str, Any], at: _At) -> Iterator[tuple[str, str]]:
        kind = avro_type.get("type")
        if kind in _FLOATING:
            yield from self.checks(kind, at)
        elif kind in ("array", "map"):
            var = f"v{at.depth}"  # one name per nesting level: inner lists keep their own
            element = var if kind == "array" else f"{at.value}[{var}]"
            items = avro_type.get("items" if kind == "array" else "values")
            inner = at._replace(value=element, depth=at.depth + 1)
            for path, condition in self.checks(items, inner):
                yield path, f"{at.value}.all({var}, {condition})"
        elif kind == "record":
            yield from self._record(avro_type, at)

    def _record(self, record: Mapping[str, Any], at: _At) -> Iterator[tuple[str, str]]:
        fullname = avro_fullname(
            str(record.get("name")), str(record.get("namespace", at.namespace))
        )
        self.named.setdefault(fullname, record)
        if fullname in at.within:  # a recursive record: checked down to its first repetition
            return
        within = at.within | {fullname}
        namespace = fullname.rpartition(".")[0]
        for field in record.get("fields", []):
            name = str(field["name"])
            inner = at._replace(
                value=f"{at.value}.{name}",
                path=f"{at.path}.{name}" if at.path else name,
                namespace=namespace,
                within=within,
            )
            yield from self.checks(field.get("type"), inner)
