"""The registry's operations, independent of HTTP: validate, decide, persist, apply.

Every write takes one lock, computes the records from the current state,
waits for Kafka to confirm them and only then applies them to the state, so a
client that got an answer can rely on it surviving a restart, and two
concurrent registrations never get the same version or id.

Behaviour follows Confluent Schema Registry where the Python client can see it:

* the same schema (canonical JSON), metadata and rule set registered again
  under a subject returns the existing version; the same schema keeps its id
  across subjects; a new metadata or rule set is a new schema (id, version);
* a registration without ``metadata`` / ``ruleSet`` inherits them from the
  subject's latest version, as Confluent does, so registering a plain schema
  does not silently drop a subject's data-contract rules;
* the server-side ``defaultRuleSet`` / ``overrideRuleSet`` (and metadata) of a
  config are stored and returned but not merged into registrations.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flightrec.contracts.compatibility import (
    COMPATIBILITY_LEVELS,
    InvalidSchemaError,
    ParsedSchema,
    check_compatibility,
    parse_avro,
)
from flightrec.testing.registry import errors
from flightrec.testing.registry.state import (
    DEFAULT_COMPATIBILITY,
    RegistryState,
    Version,
    config_key,
    id_key,
    identity_of,
    schema_key,
)
from flightrec.testing.registry.storage import Record, Storage

__all__ = ["Candidate", "RegistryService"]

_MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class Candidate:
    """A schema from a request body, validated."""

    schema_type: str
    text: str
    parsed: ParsedSchema
    references: tuple[dict[str, Any], ...]
    metadata: dict[str, Any] | None
    rule_set: dict[str, Any] | None


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


class RegistryService:
    """State plus storage; the HTTP layer calls one method per endpoint."""

    def __init__(self, log: Storage) -> None:
        self._log = log
        self._state = RegistryState()
        self._lock = asyncio.Lock()
        # Parsed stored schemas, by (text, reference texts): parsing is the
        # costly part of a compatibility check and stored texts never change.
        self._parsed: dict[tuple[str, tuple[str, ...]], ParsedSchema] = {}

    @property
    def state(self) -> RegistryState:
        """The current state (read-only by convention)."""
        return self._state

    async def start(self) -> int:
        """Rebuild the state from the storage topic; returns the records read."""
        records = await self._log.open()
        for key, value in records:
            self._state.apply(key, value)
        return len(records)

    async def stop(self) -> None:
        """Release the storage."""
        await self._log.close()

    async def _commit(self, records: Sequence[Record]) -> None:
        try:
            await self._log.write(records)
        except Exception as exc:
            raise errors.ApiError(500, 50001, f"Error while storing the schema: {exc}") from exc
        for key, value in records:
            self._state.apply(key, value)

    # -- parsing ----------------------------------------------------------------

    def _reference_texts(self, references: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
        texts: list[str] = []
        for ref in references:
            subject, version = ref.get("subject"), ref.get("version")
            if not isinstance(subject, str) or not isinstance(version, int):
                raise errors.invalid_schema(f"Invalid schema reference {dict(ref)}")
            candidates = self._state.subject_versions(subject, deleted=True)
            # -1 names the latest version, as in Confluent's reference syntax.
            found = candidates if version == -1 else [v for v in candidates if v.version == version]
            if not found:
                raise errors.invalid_schema(
                    f"Invalid schema: reference {ref.get('name')!r} to subject {subject!r} "
                    f"version {version} not found"
                )
            target = found[-1]
            texts.extend(self._reference_texts(target.references))
            texts.append(target.schema)
        return tuple(texts)

    def _parse_stored(self, version: Version) -> ParsedSchema:
        refs = self._reference_texts(version.references)
        key = (version.schema, refs)
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = parse_avro(version.schema, refs)
            self._parsed[key] = parsed
        return parsed

    def parse_candidate(self, body: Any) -> Candidate:
        """Validate a request body (``schema``, ``schemaType``, ``references``, ...)."""
        if not isinstance(body, Mapping):
            raise errors.invalid_schema("Invalid request: the body must be a JSON object")
        text = body.get("schema")
        if not isinstance(text, str) or not text.strip():
            raise errors.invalid_schema("Invalid schema: empty or missing 'schema' string")
        schema_type = body.get("schemaType") or "AVRO"
        if not isinstance(schema_type, str) or schema_type.upper() != "AVRO":
            raise errors.invalid_schema(
                f"Invalid schema type {schema_type!r}: this registry supports AVRO only"
            )
        references = body.get("references") or []
        metadata = body.get("metadata")
        rule_set = body.get("ruleSet")
        if not isinstance(references, list) or not all(isinstance(r, dict) for r in references):
            raise errors.invalid_schema("Invalid schema: 'references' must be a list of objects")
        if metadata is not None and not isinstance(metadata, dict):
            raise errors.invalid_schema("Invalid schema: 'metadata' must be an object")
        if rule_set is not None and not isinstance(rule_set, dict):
            raise errors.invalid_schema("Invalid schema: 'ruleSet' must be an object")
        try:
            parsed = parse_avro(text, self._reference_texts(references))
        except InvalidSchemaError as exc:
            raise errors.invalid_schema(str(exc)) from exc
        return Candidate("AVRO", text, parsed, tuple(references), metadata, rule_set)

    def _identity(self, c: Candidate, metadata: Any, rule_set: Any) -> str:
        return identity_of(c.schema_type, c.parsed.canonical, c.references, metadata, rule_set)

    def _stored_identity(self, v: Version) -> str:
        return self._state.id_identity.get(v.id) or identity_of(
            v.schema_type, self._parse_stored(v).canonical, v.references, v.metadata, v.rule_set
        )

    # -- registration and lookup ---------------------------------------------------

    async def register(self, subject: str, body: Any) -> dict[str, Any]:
        """``POST /subjects/{subject}/versions``."""
        async with self._lock:
            c = self.parse_candidate(body)
            state = self._state
            live = state.subject_versions(subject)
            metadata, rule_set = c.metadata, c.rule_set
            if live:
                # Confluent carries the previous version's metadata and rules
                # forward when a registration does not state its own.
                metadata = live[-1].metadata if metadata is None else metadata
                rule_set = live[-1].rule_set if rule_set is None else rule_set
            identity = self._identity(c, metadata, rule_set)
            for v in reversed(live):
                if self._stored_identity(v) == identity:
                    return v.response()
            level = state.compatibility(subject)
            earlier = [(v.version, self._parse_stored(v)) for v in live]
            report = check_compatibility(c.parsed, earlier, level)
            if not report.compatible:
                raise errors.incompatible(subject, report.messages)
            records: list[Record] = []
            schema_id = state.identity_id.get(identity)
            text = c.text
            if schema_id is None:
                schema_id = state.next_id()
                guid = str(uuid.uuid4())
                records.append((id_key(schema_id), {"identity": identity, "guid": guid}))
            else:
                guid = state.id_guid.get(schema_id, "")
                holder = state.by_id(schema_id)
                # One id, one text: /schemas/ids/{id} answers the same in every subject.
                text = holder.schema if holder is not None else text
            everything = state.subject_versions(subject, deleted=True)
            number = (everything[-1].version if everything else 0) + 1
            version = Version(
                subject=subject,
                version=number,
                id=schema_id,
                guid=guid,
                schema=text,
                schema_type=c.schema_type,
                references=c.references,
                metadata=metadata,
                rule_set=rule_set,
            )
            records.append((schema_key(subject, number), version.to_record()))
            await self._commit(records)
            return version.response()

    def lookup(self, subject: str, body: Any, *, deleted: bool) -> dict[str, Any]:
        """``POST /subjects/{subject}``: the version holding this schema."""
        c = self.parse_candidate(body)
        versions = self._state.subject_versions(subject, deleted=deleted)
        if not versions:
            raise errors.subject_not_found(subject)
        for v in reversed(versions):
            if v.schema_type != c.schema_type or v.references != c.references:
                continue
            if self._parse_stored(v).canonical != c.parsed.canonical:
                continue
            # Metadata and rules are compared only when the request states them
            # (serializers look up the plain schema of a governed subject).
            # Clients re-serialise them with defaults filled in (confluent-kafka
            # sends ``"encodingRules": []``), so empty and absent compare equal.
            if c.metadata is not None and _sparse(c.metadata) != _sparse(v.metadata):
                continue
            if c.rule_set is not None and _sparse(c.rule_set) != _sparse(v.rule_set):
                continue
            return v.response()
        raise errors.schema_not_found()

    # -- subjects and versions -----------------------------------------------------

    def subjects(self, query: Mapping[str, str]) -> list[str]:
        """``GET /subjects``."""
        names = self._state.subjects(
            deleted=_flag(query.get("deleted")), deleted_only=_flag(query.get("deleted_only"))
        )
        prefix = query.get("subjectPrefix")
        if prefix:
            names = [n for n in names if n.startswith(prefix)]
        return _page(names, query)

    def versions(self, subject: str, query: Mapping[str, str]) -> list[int]:
        """``GET /subjects/{subject}/versions``."""
        deleted_only = _flag(query.get("deleted_only"))
        found = self._state.subject_versions(
            subject, deleted=deleted_only or _flag(query.get("deleted"))
        )
        if not found:
            raise errors.subject_not_found(subject)
        if deleted_only:
            found = [v for v in found if v.deleted]
        return _page([v.version for v in found], query)

    def _resolve(self, subject: str, spec: str, *, deleted: bool) -> Version:
        number = parse_version(spec)
        versions = self._state.subject_versions(subject, deleted=deleted)
        if not versions:
            raise errors.subject_not_found(subject)
        if number is None:
            return versions[-1]
        for v in versions:
            if v.version == number:
                return v
        raise errors.version_not_found(number)

    def get_version(self, subject: str, spec: str, *, deleted: bool) -> dict[str, Any]:
        """``GET /subjects/{subject}/versions/{version}``."""
        return self._resolve(subject, spec, deleted=deleted).response()

    def get_version_schema(self, subject: str, spec: str, *, deleted: bool) -> str:
        """``GET /subjects/{subject}/versions/{version}/schema``: the text only."""
        return self._resolve(subject, spec, deleted=deleted).schema

    def referenced_by(self, subject: str, spec: str) -> list[int]:
        """``GET /subjects/{subject}/versions/{version}/referencedby``."""
        target = self._resolve(subject, spec, deleted=False)
        ids = {
            v.id
            for vs in self._state.versions.values()
            for v in vs.values()
            if not v.deleted
            and any(
                r.get("subject") == subject and r.get("version") == target.version
                for r in v.references
            )
        }
        return sorted(ids)

    def latest_with_metadata(self, subject: str, query: Any) -> dict[str, Any]:
        """``GET /subjects/{subject}/metadata?key=k&value=v...``."""
        keys = [urllib.parse.unquote(k) for k in query.getall("key", [])]
        values = [urllib.parse.unquote(v) for v in query.getall("value", [])]
        wanted = dict(zip(keys, values, strict=False))
        versions = self._state.subject_versions(subject, deleted=_flag(query.get("deleted")))
        if not versions:
            raise errors.subject_not_found(subject)
        for v in reversed(versions):
            props = (v.metadata or {}).get("properties") or {}
            if all(props.get(k) == val for k, val in wanted.items()):
                return v.response()
        raise errors.schema_not_found(f"Schema with metadata {wanted} not found")

    # -- ids -----------------------------------------------------------------------

    def _by_id(self, raw: str) -> Version:
        try:
            schema_id = int(raw)
        except ValueError:
            raise errors.schema_not_found(f"Schema {raw} not found") from None
        found = self._state.by_id(schema_id)
        if found is None:
            raise errors.schema_not_found(f"Schema {schema_id} not found")
        return found

    def schema_by_id(self, raw: str) -> dict[str, Any]:
        """``GET /schemas/ids/{id}``."""
        v = self._by_id(raw)
        return {**v.schema_body(), "guid": v.guid}

    def schema_by_guid(self, guid: str) -> dict[str, Any]:
        """``GET /schemas/guids/{guid}``."""
        v = self._state.by_guid(guid)
        if v is None:
            raise errors.schema_not_found(f"Schema {guid} not found")
        return {**v.schema_body(), "id": v.id, "guid": v.guid}

    def id_subjects(self, raw: str, query: Mapping[str, str]) -> list[str]:
        """``GET /schemas/ids/{id}/subjects``."""
        v = self._by_id(raw)
        holders = self._state.holders(v.id, deleted=_flag(query.get("deleted")))
        if query.get("subject"):
            holders = [h for h in holders if h.subject == query["subject"]]
        return _page(sorted({h.subject for h in holders}), query)

    def id_versions(self, raw: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /schemas/ids/{id}/versions``."""
        v = self._by_id(raw)
        holders = self._state.holders(v.id, deleted=_flag(query.get("deleted")))
        if query.get("subject"):
            holders = [h for h in holders if h.subject == query["subject"]]
        return _page([{"subject": h.subject, "version": h.version} for h in holders], query)

    # -- deletes -------------------------------------------------------------------

    async def delete_subject(self, subject: str, *, permanent: bool) -> list[int]:
        """``DELETE /subjects/{subject}[?permanent=true]``."""
        async with self._lock:
            everything = self._state.subject_versions(subject, deleted=True)
            if not everything:
                raise errors.subject_not_found(subject)
            live = [v for v in everything if not v.deleted]
            records: list[Record] = []
            if permanent:
                if live:
                    raise errors.subject_not_soft_deleted(subject)
                records = [(schema_key(subject, v.version), None) for v in everything]
                done = everything
            else:
                if not live:
                    raise errors.subject_soft_deleted(subject)
                records = [
                    (schema_key(subject, v.version), v.soft_deleted().to_record()) for v in live
                ]
                # Confluent drops the subject's own compatibility with the subject.
                if subject in self._state.configs:
                    records.append((config_key(subject), None))
                done = live
            await self._commit(records)
            return [v.version for v in done]

    async def delete_version(self, subject: str, spec: str, *, permanent: bool) -> int:
        """``DELETE /subjects/{subject}/versions/{version}[?permanent=true]``."""
        async with self._lock:
            number = parse_version(spec)
            everything = self._state.subject_versions(subject, deleted=True)
            if not everything:
                raise errors.subject_not_found(subject)
            if number is None:
                pool = everything if permanent else [v for v in everything if not v.deleted]
                if not pool:
                    raise errors.subject_not_found(subject)
                number = pool[-1].version
            target = next((v for v in everything if v.version == number), None)
            if target is None:
                raise errors.version_not_found(number)
            if permanent:
                if not target.deleted:
                    raise errors.version_not_soft_deleted(subject, number)
                record: Record = (schema_key(subject, number), None)
            else:
                if target.deleted:
                    raise errors.version_soft_deleted(subject, number)
                record = (schema_key(subject, number), target.soft_deleted().to_record())
            await self._commit([record])
            return number

    # -- config and compatibility ------------------------------------------------

    def get_config(self, subject: str | None, *, default_to_global: bool) -> dict[str, Any]:
        """``GET /config[/{subject}]``."""
        if subject is not None and subject in self._state.configs:
            return dict(self._state.configs[subject])
        if subject is not None and not default_to_global:
            raise errors.subject_config_not_found(subject)
        config = dict(self._state.configs.get(None, {}))
        config.setdefault("compatibilityLevel", DEFAULT_COMPATIBILITY)
        return config

    async def put_config(self, subject: str | None, body: Any) -> dict[str, Any]:
        """``PUT /config[/{subject}]`` with ``compatibility`` (or ``compatibilityLevel``)."""
        if not isinstance(body, Mapping):
            raise errors.compatibility_invalid()
        raw = body.get("compatibility", body.get("compatibilityLevel"))
        extra = {k: v for k, v in body.items() if k not in {"compatibility", "compatibilityLevel"}}
        if raw is None and not extra:
            raise errors.compatibility_invalid()
        level = None
        if raw is not None:
            if not isinstance(raw, str) or raw.upper() not in COMPATIBILITY_LEVELS:
                raise errors.compatibility_invalid()
            level = raw.upper()
        async with self._lock:
            config = dict(self._state.configs.get(subject, {}))
            config.update(extra)
            if level is not None:
                config["compatibilityLevel"] = level
            await self._commit([(config_key(subject), config)])
        answer = dict(extra)
        if level is not None:
            answer["compatibility"] = level
        return answer

    async def delete_config(self, subject: str | None) -> dict[str, Any]:
        """``DELETE /config[/{subject}]``: back to the default; returns the old config."""
        async with self._lock:
            if subject is not None and subject not in self._state.configs:
                raise errors.subject_config_not_found(subject)
            old = self.get_config(subject, default_to_global=True)
            await self._commit([(config_key(subject), None)])
            return old

    def test_compatibility(
        self, subject: str, spec: str | None, body: Any, *, verbose: bool
    ) -> dict[str, Any]:
        """``POST /compatibility/subjects/{subject}/versions[/{version}]``."""
        c = self.parse_candidate(body)
        level = self._state.compatibility(subject)
        live = self._state.subject_versions(subject)
        if spec is None:
            earlier = [(v.version, self._parse_stored(v)) for v in live]
            report = check_compatibility(c.parsed, earlier, level)
        else:
            number = parse_version(spec)
            if not live:
                if number is None:
                    # Nothing registered yet: anything is compatible (Confluent).
                    return (
                        {"is_compatible": True, "messages": []}
                        if verbose
                        else {"is_compatible": True}
                    )
                raise errors.subject_not_found(subject)
            target = (
                live[-1] if number is None else next((v for v in live if v.version == number), None)
            )
            if target is None:
                raise errors.version_not_found(number)
            earlier = [(target.version, self._parse_stored(target))]
            report = check_compatibility(c.parsed, earlier, level, transitive=False)
        answer: dict[str, Any] = {"is_compatible": report.compatible}
        if verbose:
            answer["messages"] = list(report.messages)
        return answer


def parse_version(spec: str) -> int | None:
    """A version path segment: ``None`` for latest (``latest`` / ``-1``), else 1..2^31-1."""
    if spec == "latest" or spec == "-1":
        return None
    try:
        number = int(spec)
    except ValueError:
        raise errors.invalid_version(spec) from None
    if not 1 <= number <= _MAX_VERSION:
        raise errors.invalid_version(spec)
    return number


def _page(items: list[Any], query: Mapping[str, str]) -> list[Any]:
    """Apply ``offset`` / ``limit`` (negative limit: no limit) as Confluent does."""
    try:
        offset = max(int(query.get("offset", "0")), 0)
        limit = int(query.get("limit", "-1"))
    except ValueError:
        return items
    items = items[offset:]
    return items if limit < 0 else items[:limit]


def _sparse(value: Any) -> Any:
    """``value`` without null, empty-list and empty-object members, recursively."""
    if isinstance(value, Mapping):
        pruned = {k: _sparse(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_sparse(v) for v in value]
    return value
