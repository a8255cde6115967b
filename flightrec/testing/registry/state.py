"""The registry's state, rebuilt from and advanced by log records.

The state is a pure function of the records of the storage topic, applied in
order: :meth:`RegistryState.apply` is the only mutator, used both when
replaying the topic at start-up and after each write is confirmed. Nothing here
touches Kafka or HTTP, so the rules are unit-testable.

Records are JSON ``(key, value)`` pairs in the spirit of Confluent's own
``_schemas`` topic; a ``None`` value is a tombstone (compaction drops the key):

* ``{"keytype": "SCHEMA", "subject": s, "version": v}`` -> a :class:`Version`
  dict (``deleted`` true for a soft delete); tombstone = permanent delete.
* ``{"keytype": "ID", "id": n}`` -> ``{"identity": ..., "guid": ...}``: which
  schema an id names. Never tombstoned, so an id is never reused for another
  schema and the same schema keeps its id after restarts and deletes.
* ``{"keytype": "CONFIG", "subject": s | None}`` -> the config body;
  tombstone = back to the default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "RegistryState",
    "Version",
    "config_key",
    "id_key",
    "identity_of",
    "schema_key",
]

DEFAULT_COMPATIBILITY = "BACKWARD"


@dataclass(frozen=True)
class Version:
    """One version of a subject, as stored and as served."""

    subject: str
    version: int
    id: int
    guid: str
    schema: str
    schema_type: str = "AVRO"
    references: tuple[dict[str, Any], ...] = ()
    metadata: dict[str, Any] | None = None
    rule_set: dict[str, Any] | None = None
    deleted: bool = False

    def to_record(self) -> dict[str, Any]:
        """The JSON value stored in the topic."""
        return {
            "subject": self.subject,
            "version": self.version,
            "id": self.id,
            "guid": self.guid,
            "schema": self.schema,
            "schemaType": self.schema_type,
            "references": list(self.references),
            "metadata": self.metadata,
            "ruleSet": self.rule_set,
            "deleted": self.deleted,
        }

    @classmethod
    def from_record(cls, value: dict[str, Any]) -> Version:
        """Inverse of :meth:`to_record`."""
        return cls(
            subject=str(value["subject"]),
            version=int(value["version"]),
            id=int(value["id"]),
            guid=str(value.get("guid") or ""),
            schema=str(value["schema"]),
            schema_type=str(value.get("schemaType") or "AVRO"),
            references=tuple(value.get("references") or ()),
            metadata=value.get("metadata"),
            rule_set=value.get("ruleSet"),
            deleted=bool(value.get("deleted", False)),
        )

    def schema_body(self) -> dict[str, Any]:
        """The schema fields of a response, as Confluent shapes them.

        ``schemaType`` is left out for Avro (clients default to it);
        ``references``, ``metadata`` and ``ruleSet`` only when present, exactly
        as they were registered.
        """
        body: dict[str, Any] = {"schema": self.schema}
        if self.schema_type != "AVRO":
            body["schemaType"] = self.schema_type
        if self.references:
            body["references"] = list(self.references)
        if self.metadata is not None:
            body["metadata"] = self.metadata
        if self.rule_set is not None:
            body["ruleSet"] = self.rule_set
        return body

    def response(self) -> dict[str, Any]:
        """The full registered-schema body (``GET /subjects/{s}/versions/{v}``)."""
        return {
            "subject": self.subject,
            "version": self.version,
            "id": self.id,
            "guid": self.guid,
            **self.schema_body(),
        }

    def soft_deleted(self) -> Version:
        """The same version marked deleted."""
        return replace(self, deleted=True)


def identity_of(
    schema_type: str,
    canonical: str,
    references: list[dict[str, Any]] | tuple[dict[str, Any], ...],
    metadata: dict[str, Any] | None,
    rule_set: dict[str, Any] | None,
) -> str:
    """The text that decides schema ids: same identity, same id, in any subject.

    Metadata and rules are part of it, as in Confluent: the same schema with a
    new rule set is a new schema (new id, new version).
    """
    return json.dumps(
        {
            "schemaType": schema_type,
            "schema": canonical,
            "references": list(references),
            "metadata": metadata,
            "ruleSet": rule_set,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def schema_key(subject: str, version: int) -> dict[str, Any]:
    """Topic key of one subject version."""
    return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}


def id_key(schema_id: int) -> dict[str, Any]:
    """Topic key of one schema id."""
    return {"keytype": "ID", "id": schema_id, "magic": 1}


def config_key(subject: str | None) -> dict[str, Any]:
    """Topic key of the global (``None``) or a subject's config."""
    return {"keytype": "CONFIG", "subject": subject, "magic": 0}


@dataclass
class RegistryState:
    """Subjects, versions, ids and configs; advanced only by :meth:`apply`."""

    versions: dict[str, dict[int, Version]] = field(default_factory=dict)
    id_identity: dict[int, str] = field(default_factory=dict)
    id_guid: dict[int, str] = field(default_factory=dict)
    identity_id: dict[str, int] = field(default_factory=dict)
    configs: dict[str | None, dict[str, Any]] = field(default_factory=dict)

    # -- the only mutator -----------------------------------------------------

    def apply(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        """Apply one record; unknown key types are ignored (newer writers)."""
        keytype = key.get("keytype")
        if keytype == "SCHEMA":
            name, version = str(key["subject"]), int(key["version"])
            if value is None:
                self.versions.get(name, {}).pop(version, None)
                if not self.versions.get(name):
                    self.versions.pop(name, None)
            else:
                self.versions.setdefault(name, {})[version] = Version.from_record(value)
        elif keytype == "ID" and value is not None:
            schema_id = int(key["id"])
            identity = str(value["identity"])
            self.id_identity[schema_id] = identity
            self.id_guid[schema_id] = str(value.get("guid") or "")
            self.identity_id[identity] = schema_id
        elif keytype == "CONFIG":
            scope = key.get("subject")
            scope = None if scope is None else str(scope)
            if value is None:
                self.configs.pop(scope, None)
            else:
                self.configs[scope] = dict(value)

    # -- queries --------------------------------------------------------------

    def next_id(self) -> int:
        """The id a new schema gets: one above every id ever given."""
        return max(self.id_identity, default=0) + 1

    def subject_versions(self, subject: str, *, deleted: bool = False) -> list[Version]:
        """Versions of a subject, oldest first; soft-deleted ones only if asked."""
        found = sorted(self.versions.get(subject, {}).values(), key=lambda v: v.version)
        return found if deleted else [v for v in found if not v.deleted]

    def subjects(self, *, deleted: bool = False, deleted_only: bool = False) -> list[str]:
        """Subject names: live ones, or with soft-deleted ones, or soft-deleted only."""
        names: list[str] = []
        for subject, versions in self.versions.items():
            live = any(not v.deleted for v in versions.values())
            if (deleted_only and not live) or (not deleted_only and (live or deleted)):
                names.append(subject)
        return sorted(names)

    def by_id(self, schema_id: int) -> Version | None:
        """Some version (live first) holding schema id ``schema_id``, if any remains."""
        holders = [v for vs in self.versions.values() for v in vs.values() if v.id == schema_id]
        holders.sort(key=lambda v: (v.deleted, v.subject, v.version))
        return holders[0] if holders else None

    def by_guid(self, guid: str) -> Version | None:
        """Some version holding the schema with ``guid``."""
        for schema_id, g in self.id_guid.items():
            if g == guid:
                return self.by_id(schema_id)
        return None

    def holders(self, schema_id: int, *, deleted: bool = False) -> list[Version]:
        """Every version holding ``schema_id`` (soft-deleted ones only if asked)."""
        found = [
            v
            for vs in self.versions.values()
            for v in vs.values()
            if v.id == schema_id and (deleted or not v.deleted)
        ]
        return sorted(found, key=lambda v: (v.subject, v.version))

    def compatibility(self, subject: str | None) -> str:
        """The level in force for ``subject`` (its own, else global, else default)."""
        for scope in (subject, None):
            level = self.configs.get(scope, {}).get("compatibilityLevel")
            if level:
                return str(level)
        return DEFAULT_COMPATIBILITY
