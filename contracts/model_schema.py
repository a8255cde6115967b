"""The Avro schema of a team's pydantic model, PII tags included.

A team declares its input event and its decision as plain pydantic v2 models in
its own package, and marks personal data with :data:`PII`::

    class Claim(BaseModel):
        claimant_name: Annotated[str, PII]
        email: str | None = Field(None, json_schema_extra={"pii": True})

:func:`avro_schema_for` derives the record that is registered for the topic and
written by confluent-kafka's ``AvroSerializer`` (fastavro): a datum is the
model's ``model_dump()``, and ``Model.model_validate(datum)`` reads it back.
PII fields carry the Confluent field tag ``"confluent:tags": ["PII"]``, which
:func:`flightrec.contracts.schema_files.pii_fields` reads for the PII guard;
:func:`pii_fields_of` gives the same dotted paths from the model itself.

The mapping is written here rather than taken from a library, because neither
candidate works on an arbitrary ``BaseModel`` with the types we need:

- ``dataclasses-avroschema`` (0.71) only maps classes that inherit its
  ``AvroBaseModel``: a plain nested ``BaseModel`` is an "unknown type", so a
  team would have to inherit a library class. It also writes ``datetime`` as
  ``timestamp-millis``, which drops the microseconds a round trip must keep.
- ``pydantic-avro`` (0.13) maps the model's JSON schema, which has lost what we
  need: the ``PII`` marker, and that ``default_factory=list`` has a default (the
  field comes out nullable, defaulting to null). It also accepts ``dict`` as an
  Avro map and unions of several types silently, where we must refuse them.

Mapping (anything else raises :class:`ModelSchemaError` naming model and field):

======================  ==================================================
``str``                 ``"string"``
``int``                 ``"long"``
``float``               ``"double"``
``bool``                ``"boolean"``
``datetime``            ``{"type": "long", "logicalType": "timestamp-micros"}``
``AwareDatetime``, ...   the same (also ``PastDatetime``, ``FutureDatetime``)
``date``                ``{"type": "int", "logicalType": "date"}``
``Literal["A", "B"]``   ``"string"`` (not an enum, see :func:`_literal`)
``X | None``            ``["null", X]``, default null
``list[X]``             ``{"type": "array", "items": X}``
a ``BaseModel``         a record named after the class, defined at its first
                        use and referenced by name afterwards
======================  ==================================================

Avro field names are the Python field names (what ``model_dump()`` writes);
field descriptions become ``doc``; defaults are carried when they have a JSON
form. Datetimes should be timezone-aware: Avro stores an instant, and a naive
value is read back as UTC.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import fastavro
from pydantic import AwareDatetime, BaseModel, FutureDatetime, PastDatetime
from pydantic.fields import FieldInfo

from flightrec.contracts.errors import ModelSchemaError
from flightrec.contracts.schema_files import PII_TAG

__all__ = ["PII", "avro_schema_for", "pii_fields_of"]


class _PiiMarker:
    """The type of :data:`PII`: one immutable instance, compared by identity."""

    __slots__ = ()
    _instance: typing.ClassVar[_PiiMarker | None] = None

    def __new__(cls) -> _PiiMarker:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "PII"

    def __reduce__(self) -> str:
        # Copies and pickles of a model's field metadata stay the one marker.
        return "PII"


PII: Final = _PiiMarker()
"""Marks a ``str`` field as personal data: ``name: Annotated[str, PII]``."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY: Final = date(1970, 1, 1)
_AVRO_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MISSING: Final = object()
"""A default with no JSON form: the field is written without an Avro default."""


def avro_schema_for(
    model: type[BaseModel],
    *,
    name: str | None = None,
    namespace: str,
    doc: str | None = None,
) -> dict[str, Any]:
    """The Avro record schema of ``model`` (see the module docstring for the mapping).

    ``name`` defaults to the class name and ``doc`` to its docstring; nested
    records share ``namespace``. The same model always gives the same schema,
    key order included, so its registered text is stable. Raises
    :class:`ModelSchemaError` (context: model, field) for a type Avro cannot
    hold here or a PII marker on a field that is not ``str``.
    """
    builder = _Builder()
    schema = builder.record(model, name or model.__name__, namespace=namespace, doc=doc)
    try:
        # fastavro also checks what the walk does not: each default against its type.
        fastavro.parse_schema(schema, _write_hint=False)
    except Exception as exc:  # fastavro raises several unrelated exception types
        raise ModelSchemaError(f"not a valid Avro schema: {exc}", model=model.__name__) from exc
    return schema


def pii_fields_of(model: type[BaseModel]) -> frozenset[str]:
    """Fields of ``model`` marked :data:`PII`, as dotted paths through nested models.

    The same paths :func:`~flightrec.contracts.schema_files.pii_fields` reads
    from the tags of :func:`avro_schema_for`'s schema (a list of records adds no
    index: ``claims.claimant_name``).
    """
    found: set[str] = set()
    _collect_pii(model, "", found, frozenset())
    return frozenset(found)


def _collect_pii(
    model: type[BaseModel], prefix: str, found: set[str], seen: frozenset[type[BaseModel]]
) -> None:
    if model in seen:  # a recursive model: its fields are already on this path
        return
    seen = seen | {model}
    for field_name, info in model.model_fields.items():
        path = f"{prefix}{field_name}"
        if _field_is_pii(model, field_name, info):
            found.add(path)
        for nested in _models_in(info.annotation):
            _collect_pii(nested, f"{path}.", found, seen)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type holds: itself, a union arm or a list item."""
    annotation = _unannotated(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


# ------------------------------------------------------------------ fields


def _unannotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _marked(annotation: Any) -> bool:
    """Whether ``annotation``'s own ``Annotated`` layers hold the PII marker."""
    while get_origin(annotation) is Annotated:
        if any(meta is PII for meta in annotation.__metadata__):
            return True
        annotation = get_args(annotation)[0]
    return False


def _optional_arm(annotation: Any) -> Any:
    """``X`` of ``X | None`` (either spelling), else None."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        if len(args) == 2 and type(None) in args:
            return next(arg for arg in args if arg is not type(None))
    return None


def _field_is_pii(model: type[BaseModel], field_name: str, info: FieldInfo) -> bool:
    """Whether a field is marked PII; the marker is allowed on ``str`` and ``str | None``.

    pydantic moves the metadata of ``Annotated[str, PII]`` into ``info.metadata``
    but keeps ``Annotated[str, PII] | None`` as it is, so both places count.
    """
    extra = info.json_schema_extra
    pii = (
        any(meta is PII for meta in info.metadata)
        or (isinstance(extra, dict) and extra.get("pii") is True)
        or _marked(info.annotation)
    )
    base = _unannotated(info.annotation)
    arm = _optional_arm(base)
    if arm is not None:
        pii = pii or _marked(arm)
        base = _unannotated(arm)
    if pii and base is not str:
        raise ModelSchemaError(
            f"PII marks str fields only, not {_type_name(info.annotation)}",
            model=model.__name__,
            field=field_name,
        )
    return pii


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _literal(model: type[BaseModel], field_name: str, values: tuple[Any, ...]) -> str:
    # A Literal of strings is an Avro string, not an enum: label sets such as a
    # decision's outcomes grow, an enum symbol added breaks old readers, and the
    # registered CEL rule is what checks the value is in the set.
    if not all(isinstance(value, str) for value in values):
        raise ModelSchemaError(
            f"only a Literal of strings is supported, not {values!r}",
            model=model.__name__,
            field=field_name,
        )
    return "string"


# ----------------------------------------------------------------- records


@dataclass
class _Builder:
    """One schema's walk: which record names are already defined, and by which class."""

    defined: dict[str, type[BaseModel]] = field(default_factory=dict)

    def record(
        self,
        model: type[BaseModel],
        name: str,
        *,
        namespace: str | None = None,
        doc: str | None = None,
    ) -> dict[str, Any]:
        if not _AVRO_NAME.fullmatch(name):
            raise ModelSchemaError(f"{name!r} is not an Avro record name", model=model.__name__)
        self.defined[name] = model  # before the fields: a recursive model refers to itself
        schema: dict[str, Any] = {"type": "record", "name": name}
        if namespace is not None:
            schema["namespace"] = namespace
        record_doc = doc if doc is not None else model.__doc__
        if record_doc:
            schema["doc"] = _clean(record_doc)
        schema["fields"] = [
            self.avro_field(model, field_name, info)
            for field_name, info in model.model_fields.items()
        ]
        return schema

    def avro_field(
        self, model: type[BaseModel], field_name: str, info: FieldInfo
    ) -> dict[str, Any]:
        pii = _field_is_pii(model, field_name, info)
        avro_type = self.type_of(model, field_name, info.annotation, in_list=False)
        out: dict[str, Any] = {"name": field_name, "type": avro_type}
        if info.description:
            out["doc"] = _clean(info.description)
        default = _default_of(info)
        if default is not _MISSING:
            if isinstance(avro_type, list) and default is not None:
                # Avro takes a union's default from its first branch.
                out["type"] = [avro_type[1], "null"]
            out["default"] = default
        if pii:
            out["confluent:tags"] = [PII_TAG]
        return out

    def type_of(
        self, model: type[BaseModel], field_name: str, annotation: Any, *, in_list: bool
    ) -> Any:
        if in_list and _marked(annotation):
            raise ModelSchemaError(
                "PII marks a whole str field, not the items of a list",
                model=model.__name__,
                field=field_name,
            )
        annotation = _unannotated(annotation)
        arm = _optional_arm(annotation)
        if arm is not None:
            return ["null", self.type_of(model, field_name, arm, in_list=in_list)]
        # bool before int, datetime before date: each is a subclass of the next.
        for python_type, avro_type in _PRIMITIVES:
            if annotation is python_type:
                return avro_type
        origin = get_origin(annotation)
        if origin is Literal:
            return _literal(model, field_name, get_args(annotation))
        if origin is list and len(get_args(annotation)) == 1:
            items = self.type_of(model, field_name, get_args(annotation)[0], in_list=True)
            return {"type": "array", "items": items}
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return self.nested(model, field_name, annotation)
        raise ModelSchemaError(
            f"no Avro mapping for {_type_name(annotation)}",
            model=model.__name__,
            field=field_name,
        )

    def nested(
        self, model: type[BaseModel], field_name: str, nested: type[BaseModel]
    ) -> str | dict[str, Any]:
        name = nested.__name__
        known = self.defined.get(name)
        if known is nested:
            return name  # Avro defines a named type once; later uses name it
        if known is not None:
            raise ModelSchemaError(
                f"two different models are both named {name!r} in one schema",
                model=model.__name__,
                field=field_name,
            )
        return self.record(nested, name)


_PRIMITIVES: Final[tuple[tuple[type, Any], ...]] = (
    (str, "string"),
    (bool, "boolean"),
    (int, "long"),
    (float, "double"),
    (datetime, {"type": "long", "logicalType": "timestamp-micros"}),
    # pydantic's constrained datetimes validate into a datetime all the same.
    (AwareDatetime, {"type": "long", "logicalType": "timestamp-micros"}),
    (PastDatetime, {"type": "long", "logicalType": "timestamp-micros"}),
    (FutureDatetime, {"type": "long", "logicalType": "timestamp-micros"}),
    (date, {"type": "int", "logicalType": "date"}),
)


def _clean(text: str) -> str:
    """A docstring or description as one paragraph of ``doc``."""
    return " ".join(text.split())


# ---------------------------------------------------------------- defaults


def _default_of(info: FieldInfo) -> Any:
    """The Avro (JSON) default of a field, or ``_MISSING``."""
    if info.is_required() or info.default_factory_takes_validated_data:
        return _MISSING
    return _json_default(info.get_default(call_default_factory=True))


def _json_default(value: Any) -> Any:
    """``value`` as Avro writes a default: logical types as their stored number."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        delta = aware - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, date):
        return (value - _EPOCH_DAY).days
    if isinstance(value, list | tuple):
        items = [_json_default(item) for item in value]
        return _MISSING if any(item is _MISSING for item in items) else items
    if isinstance(value, BaseModel):
        fields = {name: _json_default(getattr(value, name)) for name in type(value).model_fields}
        return _MISSING if any(v is _MISSING for v in fields.values()) else fields
    return _MISSING
