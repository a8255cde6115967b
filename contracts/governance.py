"""Governance as code: the schema files and rules in this repository are the
truth; the registry is brought in line with them.

:func:`plan_contracts` compares every local contract with the registry and
asks the registry for a compatibility verdict (never decided locally);
:func:`apply_contracts` sets each subject's compatibility level (BACKWARD,
BACKWARD_TRANSITIVE for the CoT subject) and registers what changed, with its
``ruleSet``. Applying twice is a no-op the second time: a subject whose latest
version already holds the same schema and rules is left alone.

Every registry call goes through a client with bounded retries; an unreachable
registry raises :class:`~contracts.errors.RegistryUnavailableError` within
seconds.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from contracts.codec import registry_call, registry_client
from contracts.errors import RegistryError, SchemaIncompatibleError
from contracts.rules import rule_set_for
from contracts.schema_files import CONTRACTS, load_schemas, schema_text, subject_for
from contracts.settings import Settings

__all__ = [
    "Plan",
    "SubjectPlan",
    "apply_contracts",
    "apply_contracts_async",
    "check_contracts",
    "plan_contracts",
    "show_subject",
]

Action = Literal["NEW_SUBJECT", "NEW_VERSION", "UNCHANGED"]


@dataclass(frozen=True)
class SubjectPlan:
    """What applying does to one subject, and whether the registry accepts it."""

    contract: str
    subject: str
    action: Action
    compatible: bool
    compatibility: str
    """The level the subject is governed with."""
    current_compatibility: str | None
    """The subject-level setting found in the registry (``None``: not set)."""
    latest_version: int | None
    messages: tuple[str, ...] = ()
    """The registry's explanation when incompatible (names the field)."""
    registered_version: int | None = None
    schema_id: int | None = None

    @property
    def changes(self) -> bool:
        """Whether applying would change anything for this subject."""
        return self.action != "UNCHANGED" or self.current_compatibility != self.compatibility


@dataclass(frozen=True)
class Plan:
    """The plan (or the result, when ``applied``) for every governed subject."""

    subjects: tuple[SubjectPlan, ...]
    applied: bool = False

    @property
    def ok(self) -> bool:
        """True when every local schema is compatible with the registry."""
        return all(s.compatible for s in self.subjects)

    @property
    def changes(self) -> bool:
        """True when applying would change (or changed) the registry."""
        return any(s.changes for s in self.subjects)

    def render(self) -> str:
        """A human-readable plan, one line per subject (plus the registry's messages)."""
        lines = []
        for s in self.subjects:
            verdict = "compatible" if s.compatible else "INCOMPATIBLE"
            compat = s.compatibility
            if s.current_compatibility != s.compatibility:
                compat = f"{s.current_compatibility or 'unset'} -> {s.compatibility}"
            version = f"v{s.latest_version}" if s.latest_version is not None else "-"
            line = f"{s.subject:<40} {s.action:<12} {verdict:<13} latest={version:<5} compatibility={compat}"
            if s.registered_version is not None:
                line += f" registered=v{s.registered_version} id={s.schema_id}"
            lines.append(line)
            lines.extend(f"    {message}" for message in s.messages)
        header = "applied:" if self.applied else "plan:"
        footer = "no changes" if not self.changes else ""
        return "\n".join([header, *lines, *([footer] if footer else [])])


def _normalise_rules(rule_set: Any) -> list[dict[str, Any]]:
    # The registry may echo absent values as null/false/empty; compare what matters.
    if rule_set is None:
        return []
    rules = rule_set.to_dict().get("domainRules") or []
    return [{k: v for k, v in rule.items() if v not in (None, False, [], {})} for rule in rules]


def _same(local: Schema, latest: RegisteredSchema) -> bool:
    try:
        registered = json.loads(latest.schema.schema_str or "null")
    except json.JSONDecodeError:
        return False
    return bool(
        registered == json.loads(local.schema_str or "null")
        and _normalise_rules(latest.schema.rule_set) == _normalise_rules(local.rule_set)
    )


def _local_schemas(settings: Settings, schema_dir: Path | None) -> dict[str, Schema]:
    schemas = load_schemas(schema_dir)
    return {
        spec.name: Schema(
            schema_text(schemas[spec.name]), "AVRO", rule_set=rule_set_for(spec.name, settings)
        )
        for spec in CONTRACTS
    }


def _call(settings: Settings, fn: Any, *args: Any, what: str, **kwargs: Any) -> Any:
    return registry_call(fn, *args, what=what, url=settings.schema_registry_url, **kwargs)


def _latest(
    settings: Settings, client: SchemaRegistryClient, subject: str
) -> RegisteredSchema | None:
    try:
        latest: RegisteredSchema = _call(
            settings, client.get_version, subject, "latest", what=f"latest version of {subject}"
        )
        return latest
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return None
        raise RegistryError(str(exc), subject=subject, status=exc.http_status_code) from exc


def _subject_compatibility(
    settings: Settings, client: SchemaRegistryClient, subject: str
) -> str | None:
    try:
        level: str = _call(
            settings, client.get_compatibility, subject, what=f"compatibility of {subject}"
        )
        return level
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return None
        raise RegistryError(str(exc), subject=subject, status=exc.http_status_code) from exc


def _test_compatibility(
    settings: Settings, client: SchemaRegistryClient, subject: str, schema: Schema, transitive: bool
) -> tuple[bool, tuple[str, ...]]:
    # The registry decides (Avro's own resolution rules), with verbose messages
    # naming the offending field. Transitive subjects are tested against all versions.
    version_path = "versions" if transitive else "versions/latest"
    url = f"compatibility/subjects/{subject}/{version_path}?verbose=true"
    try:
        response = _call(
            settings,
            client._rest_client.post,
            url,
            body=schema.to_dict(),
            what=f"compatibility test of {subject}",
        )
    except SchemaRegistryError as exc:
        if exc.http_status_code == 409 or exc.http_status_code == 422:
            return False, (exc.error_message,)
        raise RegistryError(str(exc), subject=subject, status=exc.http_status_code) from exc
    compatible = bool(response.get("is_compatible", False))
    schema_dict = json.loads(schema.schema_str or "{}")
    messages = tuple(_name_fields(str(m), schema_dict) for m in response.get("messages") or ())
    return compatible, (() if compatible else messages)


_FIELD_PATH = re.compile(r"(/fields/\d+(?:/type(?:/fields/\d+)?)*)")


def _name_fields(message: str, schema: dict[str, Any]) -> str:
    """Append field names to JSON-pointer paths (``/fields/7/type`` -> ``... (field agent)``).

    Avro's checker (and Confluent's) locate type mismatches by path only; a
    reviewer wants the field's name.
    """

    def name(match: re.Match[str]) -> str:
        path = match.group(1)
        node: Any = schema
        names = []
        for part in path.strip("/").split("/"):
            if part == "fields" or part == "type":
                node = node.get(part) if isinstance(node, dict) else None
            elif part.isdigit() and isinstance(node, list) and int(part) < len(node):
                node = node[int(part)]
                names.append(str(node.get("name")))
            else:
                return path
        return f"{path} (field {'.'.join(names)})" if names else path

    return _FIELD_PATH.sub(name, message)


def plan_contracts(
    settings: Settings,
    *,
    schema_dir: Path | None = None,
    client: SchemaRegistryClient | None = None,
) -> Plan:
    """Compare the local contracts with the registry; change nothing."""
    own = client is None
    client = client if client is not None else registry_client(settings)
    try:
        return _plan(settings, client, _local_schemas(settings, schema_dir))
    finally:
        if own:
            client.close()


def _plan(settings: Settings, client: SchemaRegistryClient, local: dict[str, Schema]) -> Plan:
    subjects = []
    for spec in CONTRACTS:
        subject = subject_for(spec, settings)
        schema = local[spec.name]
        latest = _latest(settings, client, subject)
        current = _subject_compatibility(settings, client, subject) if latest is not None else None
        messages: tuple[str, ...] = ()
        if latest is None:
            action: Action = "NEW_SUBJECT"
            compatible = True
        elif _same(schema, latest):
            action = "UNCHANGED"
            compatible = True
        else:
            action = "NEW_VERSION"
            compatible, messages = _test_compatibility(
                settings, client, subject, schema, spec.transitive
            )
        subjects.append(
            SubjectPlan(
                contract=spec.name,
                subject=subject,
                action=action,
                compatible=compatible,
                compatibility=spec.compatibility,
                current_compatibility=current,
                latest_version=latest.version if latest is not None else None,
                messages=messages,
                schema_id=latest.schema_id
                if latest is not None and action == "UNCHANGED"
                else None,
            )
        )
    return Plan(tuple(subjects))


def apply_contracts(
    settings: Settings,
    *,
    schema_dir: Path | None = None,
    dry_run: bool = False,
    client: SchemaRegistryClient | None = None,
) -> Plan:
    """Bring the registry in line with the local contracts; return what was done.

    Nothing is registered when any subject is incompatible: the plan is
    checked as a whole first and :class:`SchemaIncompatibleError` names the
    subject and the registry's messages. ``dry_run`` returns the plan only.
    """
    own = client is None
    client = client if client is not None else registry_client(settings)
    try:
        local = _local_schemas(settings, schema_dir)
        plan = _plan(settings, client, local)
        if dry_run:
            return plan
        for s in plan.subjects:
            if not s.compatible:
                raise SchemaIncompatibleError(
                    "local schema is incompatible with the registry",
                    subject=s.subject,
                    messages=list(s.messages),
                )
        done = []
        for s in plan.subjects:
            if s.current_compatibility != s.compatibility:
                # Level first: the registration below is then judged by it.
                _call(
                    settings,
                    client.set_compatibility,
                    s.subject,
                    s.compatibility,
                    what=f"set compatibility of {s.subject}",
                )
            if s.action == "UNCHANGED":
                done.append(s)
                continue
            done.append(_register(settings, client, s, local[s.contract]))
        return Plan(tuple(done), applied=True)
    finally:
        if own:
            client.close()


def _register(
    settings: Settings, client: SchemaRegistryClient, s: SubjectPlan, schema: Schema
) -> SubjectPlan:
    try:
        registered: RegisteredSchema = _call(
            settings,
            client.register_schema_full_response,
            s.subject,
            schema,
            what=f"register {s.subject}",
        )
    except SchemaRegistryError as exc:
        if exc.http_status_code == 409:
            raise SchemaIncompatibleError(
                "the registry refused the new version",
                subject=s.subject,
                messages=[exc.error_message],
            ) from exc
        raise RegistryError(str(exc), subject=s.subject, status=exc.http_status_code) from exc
    version = registered.version
    if version is None:
        latest = _latest(settings, client, s.subject)
        version = latest.version if latest is not None else None
    return replace(s, registered_version=version, schema_id=registered.schema_id)


async def apply_contracts_async(settings: Settings, *, schema_dir: Path | None = None) -> Plan:
    """:func:`apply_contracts` off the event loop (for async start-up code)."""
    return await asyncio.to_thread(apply_contracts, settings, schema_dir=schema_dir)


def check_contracts(
    settings: Settings,
    *,
    schema_dir: Path | None = None,
    client: SchemaRegistryClient | None = None,
) -> Plan:
    """The CI gate: the plan, whose ``ok`` is False when a local schema is incompatible."""
    return plan_contracts(settings, schema_dir=schema_dir, client=client)


def show_subject(
    settings: Settings,
    subject: str,
    version: int | None = None,
    *,
    client: SchemaRegistryClient | None = None,
) -> dict[str, Any]:
    """One registered version of a subject (latest by default): schema, rules, id, version."""
    own = client is None
    client = client if client is not None else registry_client(settings)
    try:
        try:
            registered: RegisteredSchema = _call(
                settings,
                client.get_version,
                subject,
                version if version is not None else "latest",
                what=f"version of {subject}",
            )
        except SchemaRegistryError as exc:
            raise RegistryError(str(exc), subject=subject, status=exc.http_status_code) from exc
        result: dict[str, Any] = registered.to_dict()
        if isinstance(result.get("schema"), str):
            result["schema"] = json.loads(result["schema"])
        return result
    finally:
        if own:
            client.close()
