"""The Avro schema files of flightrec and what they govern.

Each governed topic value has one ``.avsc`` file under ``contracts/schemas/``;
its registry subject follows the TopicNameStrategy (``<topic>-value``), so a
topic prefix moves the subject with it. Files are loaded with their position
kept on error: a malformed file raises :class:`SchemaFileError` naming the file,
the line and the column, so a reviewer can jump to it.

PII is declared in the schema itself with Confluent field tags
(``"confluent:tags": ["PII"]``); :func:`pii_fields` reads the tags so the PII
guard follows the contract instead of a hard-coded list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastavro
from pydantic import BaseModel

from flightrec.contracts.errors import SchemaFileError
from flightrec.contracts.settings import Settings

if TYPE_CHECKING:
    # Imported when used: the rules load confluent-kafka's registry client,
    # which reading schema files does not need.
    from confluent_kafka.schema_registry import RuleSet

    from flightrec.contracts.rules import RuleSpec

__all__ = [
    "CONTRACTS",
    "DEFAULT_SCHEMA_DIR",
    "PII_TAG",
    "ContractSpec",
    "avro_fullname",
    "contract",
    "contract_rule_set",
    "field_tags",
    "load_schema_file",
    "load_schemas",
    "pii_fields",
    "schema_text",
    "subject_for",
]

DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
"""The schema files shipped with the package (repo-relative, package data)."""

PII_TAG = "PII"


@dataclass(frozen=True)
class ContractSpec:
    """One governed topic value: its logical name, schema and topic.

    flightrec's own contracts name a schema file and a :class:`Topics`
    attribute. An agent's contracts (:meth:`for_model`) carry their schema
    (derived from the team's pydantic model), their topic's name before the
    prefix, the model their values validate into, and the CEL rules of the
    input; a broken rule sends the record to ``dlq_topic``.
    """

    name: str
    """Logical name: the stem of the schema file (``cot_event``), or
    ``<agent>.input`` / ``<agent>.decision`` for an agent's topics."""
    topic_attr: str = ""
    """Attribute of :class:`flightrec.contracts.settings.Topics` naming the topic."""
    transitive: bool = False
    """BACKWARD_TRANSITIVE instead of BACKWARD (every old version stays readable)."""
    topic_name: str = ""
    """The topic before the prefix, for contracts that are not a Topics attribute."""
    schema: Mapping[str, Any] | None = field(default=None, compare=False)
    """The schema itself, for contracts without a schema file."""
    model: type[BaseModel] | None = field(default=None, compare=False)
    """The pydantic model values are validated into (an agent's contracts)."""
    rules: tuple[RuleSpec, ...] = ()
    """CEL conditions checked on write and read (an agent's input)."""
    dlq_topic: str = ""
    """Where a record that breaks a rule goes, before the prefix."""
    key_field: str = ""
    """The field whose value keys a dead-lettered record."""

    @classmethod
    def for_model(
        cls,
        name: str,
        topic: str,
        schema: Mapping[str, Any],
        model: type[BaseModel],
        *,
        rules: tuple[RuleSpec, ...] = (),
        dlq_topic: str = "",
        key_field: str = "",
    ) -> ContractSpec:
        """The contract of an agent's topic (``topic`` and ``dlq_topic`` before the prefix)."""
        return cls(
            name=name,
            topic_name=topic,
            schema=schema,
            model=model,
            rules=rules,
            dlq_topic=dlq_topic,
            key_field=key_field,
        )

    @property
    def file_name(self) -> str:
        """The schema file's name inside the schema directory."""
        return f"{self.name}.avsc"

    def topic(self, settings: Settings) -> str:
        """The topic (with prefix) whose values this contract governs."""
        if self.topic_name:
            return settings.topics.prefix + self.topic_name
        topic: str = getattr(settings.topics, self.topic_attr)
        return topic

    def dlq(self, settings: Settings) -> str:
        """The dead-letter topic (with prefix) of records that break a rule."""
        return settings.topics.prefix + self.dlq_topic if self.dlq_topic else ""

    @property
    def compatibility(self) -> str:
        """The registry compatibility level the subject is governed with."""
        return "BACKWARD_TRANSITIVE" if self.transitive else "BACKWARD"


CONTRACTS: tuple[ContractSpec, ...] = (
    ContractSpec("loan_application", "applications"),
    ContractSpec("loan_decision", "decisions"),
    # The flight record must stay readable from its very first event: replay
    # reads logs that hold every version ever written.
    ContractSpec("cot_event", "cot", transitive=True),
    ContractSpec("replay_result", "replays"),
)
"""Every governed contract, in registration order."""


def contract(name: str) -> ContractSpec:
    """The contract called ``name`` (``loan_application``, ``cot_event``, ...)."""
    for spec in CONTRACTS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown contract {name!r}; known: {[c.name for c in CONTRACTS]}")


def subject_for(spec: ContractSpec, settings: Settings) -> str:
    """Registry subject of a contract: TopicNameStrategy, ``<topic>-value``."""
    return f"{spec.topic(settings)}-value"


def load_schema_file(path: Path) -> dict[str, Any]:
    """Parse one ``.avsc`` file and check it is a valid Avro schema.

    Raises :class:`SchemaFileError` with ``file``, ``line`` and ``column`` when
    the JSON is malformed, and with ``file`` and the Avro error otherwise.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaFileError("cannot read schema file", file=str(path), error=str(exc)) from exc
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaFileError(
            f"malformed JSON in schema file: {exc.msg}",
            file=str(path),
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaFileError("a schema file must hold one Avro record", file=str(path))
    try:
        # fastavro rejects unknown types, bad defaults, duplicate names...
        fastavro.parse_schema(schema, _write_hint=False)
    except Exception as exc:  # fastavro raises several unrelated exception types
        raise SchemaFileError(f"invalid Avro schema: {exc}", file=str(path)) from exc
    return schema


def load_schemas(
    directory: Path | None = None, extra: Sequence[ContractSpec] = ()
) -> dict[str, dict[str, Any]]:
    """The schema of every contract (by logical name): flightrec's from ``directory``,
    then those of ``extra`` (an agent's contracts carry theirs)."""
    base = DEFAULT_SCHEMA_DIR if directory is None else directory
    schemas = {spec.name: load_schema_file(base / spec.file_name) for spec in CONTRACTS}
    for spec in extra:
        if spec.schema is None:
            raise SchemaFileError("an agent contract carries no schema", contract=spec.name)
        schemas[spec.name] = dict(spec.schema)
    return schemas


def schema_text(schema: Mapping[str, Any]) -> str:
    """The compact JSON text registered for a schema (stable key order kept)."""
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def field_tags(schema: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """Tags of every tagged field, by dotted path (``source.key``), nested records included.

    A record used by several fields is defined at its first use and named at
    the others (Avro defines each named type once); the tags of its fields are
    reported under every path that reaches it.
    """
    tags: dict[str, frozenset[str]] = {}
    _collect_tags(schema, "", tags, set(), {}, "")
    return tags


def pii_fields(schema: Mapping[str, Any] | str) -> frozenset[str]:
    """Fields tagged ``PII`` in a schema (a dict or its JSON text), as dotted paths."""
    parsed: Mapping[str, Any] = json.loads(schema) if isinstance(schema, str) else schema
    return frozenset(path for path, tags in field_tags(parsed).items() if PII_TAG in tags)


def avro_fullname(name: str, namespace: str) -> str:
    """Avro name resolution: a dotted name is full, else it joins the enclosing namespace."""
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _collect_tags(
    schema: Any,
    prefix: str,
    out: dict[str, frozenset[str]],
    seen: set[str],
    named: dict[str, Mapping[str, Any]],
    namespace: str,
) -> None:
    if isinstance(schema, str):
        # A reference to a record defined earlier: its fields carry the same tags here.
        schema = named.get(avro_fullname(schema, namespace))
    if isinstance(schema, list):
        for branch in schema:
            _collect_tags(branch, prefix, out, seen, named, namespace)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind == "array":
        _collect_tags(schema.get("items"), prefix, out, seen, named, namespace)
    elif kind == "map":
        _collect_tags(schema.get("values"), prefix, out, seen, named, namespace)
    elif kind == "record":
        name = str(schema.get("name"))
        fullname = avro_fullname(name, str(schema.get("namespace", namespace)))
        namespace = fullname.rpartition(".")[0]
        named.setdefault(fullname, schema)
        if fullname in seen:  # a recursive record: its fields were already visited
            return
        seen = seen | {fullname}
        for field in schema.get("fields", []):
            path = f"{prefix}{field['name']}"
            tags = field.get("confluent:tags")
            if tags:
                out[path] = frozenset(str(t) for t in tags)
            _collect_tags(field.get("type"), f"{path}.", out, seen, named, namespace)
    elif isinstance(kind, dict | list | str):
        _collect_tags(kind, prefix, out, seen, named, namespace)


def contract_rule_set(spec: ContractSpec, settings: Settings) -> RuleSet | None:
    """The ``ruleSet`` registered with a contract's schema (flightrec's own, or an agent's)."""
    from flightrec.contracts.rules import input_rule_set, rule_set_for

    if spec.model is not None:
        return input_rule_set(spec.rules, spec.dlq(settings), spec.key_field)
    return rule_set_for(spec.name, settings)
