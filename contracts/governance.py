"""Governance as code: the schema files and rules in this repository are the
truth; the registry is brought in line with them.

:func:`plan_contracts` compares every local contract with the registry and
gives each changed subject a compatibility verdict under the level it is
governed with (BACKWARD, BACKWARD_TRANSITIVE for the CoT subject), which is the
level :func:`apply_contracts` sets before it registers:

* when the registry already holds that level for the subject (its own or the
  global one), the registry decides (its compatibility-test endpoint, verbose);
* otherwise the registry would judge under a level that is about to change,
  and it cannot be asked about another level without writing its config
  (which a plan, a dry run or ``check`` must not do). The subject's live
  versions are then read from the registry and judged under the governed level
  by Apache Avro's checker (:mod:`flightrec.contracts.compatibility`, the
  checker the embedded registry itself runs).

:func:`apply_contracts` checks the plan as a whole and writes nothing (no
level, no version) when any subject is incompatible; otherwise it sets each
subject's level and registers what changed, with its ``ruleSet``. Applying
twice is a no-op the second time: a subject whose latest version already holds
the same schema and rules is left alone.

Every registry call goes through a client with bounded retries; an unreachable
registry raises :class:`~flightrec.contracts.errors.RegistryUnavailableError` within
seconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from confluent_kafka.schema_registry import RegisteredSchema, Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from flightrec.contracts._confluent_private import verbose_compatibility
from flightrec.contracts.codec import registry_call, registry_client
from flightrec.contracts.compatibility import (
    InvalidSchemaError,
    check_compatibility,
    parse_avro,
)
from flightrec.contracts.errors import RegistryError, SchemaIncompatibleError
from flightrec.contracts.schema_files import (
    CONTRACTS,
    ContractSpec,
    contract_rule_set,
    load_schemas,
    schema_text,
    subject_for,
)
from flightrec.contracts.settings import Settings

__all__ = [
    "Plan",
    "SubjectPlan",
    "apply_contracts",
    "check_contracts",
    "plan_contracts",
    "show_subject",
]

Action = Literal["NEW_SUBJECT", "NEW_VERSION", "UNCHANGED"]
JudgedBy = Literal["registry", "avro-checker"]


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
    judged_by: JudgedBy | None = None
    """Who gave the verdict of a new version (``None``: nothing to judge)."""

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
            if s.judged_by == "avro-checker":
                # The registry's level is about to change: judged at the new level.
                verdict += "*"
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
        footers = []
        if any(s.judged_by == "avro-checker" for s in self.subjects):
            footers.append(
                "* judged at the governed level by Apache Avro's checker against the "
                "registry's versions (the registry's own level differs until applied)"
            )
        if not self.changes:
            footers.append("no changes")
        return "\n".join([header, *lines, *footers])


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


def _local_schemas(
    settings: Settings, schema_dir: Path | None, specs: Sequence[ContractSpec]
) -> dict[str, Schema]:
    schemas = load_schemas(schema_dir, extra=[s for s in specs if s.schema is not None])
    return {
        spec.name: Schema(
            schema_text(schemas[spec.name]), "AVRO", rule_set=contract_rule_set(spec, settings)
        )
        for spec in specs
    }


def _all_specs(agent_contracts: Sequence[ContractSpec]) -> tuple[ContractSpec, ...]:
    """flightrec's contracts, then the agents' (each name once: two agents may
    share flightrec's loan contracts)."""
    specs = {spec.name: spec for spec in CONTRACTS}
    for spec in agent_contracts:
        specs.setdefault(spec.name, spec)
    return tuple(specs.values())


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


def _effective_compatibility(
    settings: Settings, client: SchemaRegistryClient, current: str | None
) -> str:
    """The level the registry applies to a subject: its own, else the global one."""
    if current is not None:
        return current
    try:
        level: str = _call(settings, client.get_compatibility, what="global compatibility")
        return level
    except SchemaRegistryError as exc:
        raise RegistryError(str(exc), status=exc.http_status_code) from exc


def _test_compatibility(
    settings: Settings, client: SchemaRegistryClient, subject: str, schema: Schema, transitive: bool
) -> tuple[bool, tuple[str, ...]]:
    """The registry's verdict under the subject's current level, with its messages."""
    # The registry decides (Avro's own resolution rules), with verbose messages
    # naming the offending field. Transitive subjects are tested against all versions.
    try:
        response = _call(
            settings,
            verbose_compatibility,
            client,
            subject,
            schema,
            transitive=transitive,
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


def _check_at_level(
    settings: Settings, client: SchemaRegistryClient, subject: str, schema: Schema, level: str
) -> tuple[bool, tuple[str, ...]]:
    """Judge ``schema`` under ``level`` against the subject's live versions in the registry.

    For a subject whose registry level differs from ``level``: the registry can
    only judge under the level it holds. Its versions are read (the registry's
    own texts) and Apache Avro's checker decides, as the registry will once
    ``level`` is set.
    """
    try:
        numbers: list[int] = _call(
            settings, client.get_versions, subject, what=f"versions of {subject}"
        )
        earlier = []
        for number in sorted(numbers):
            registered: RegisteredSchema = _call(
                settings,
                client.get_version,
                subject,
                number,
                what=f"version {number} of {subject}",
            )
            earlier.append((number, parse_avro(registered.schema.schema_str or "")))
    except SchemaRegistryError as exc:
        raise RegistryError(str(exc), subject=subject, status=exc.http_status_code) from exc
    except InvalidSchemaError as exc:
        return False, (f"a registered version cannot be judged here: {exc}",)
    report = check_compatibility(parse_avro(schema.schema_str or ""), earlier, level)
    return report.compatible, report.messages


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
    agent_contracts: Sequence[ContractSpec] = (),
) -> Plan:
    """Compare the local contracts (flightrec's and ``agent_contracts``) with the
    registry; change nothing."""
    own = client is None
    client = client if client is not None else registry_client(settings)
    specs = _all_specs(agent_contracts)
    try:
        return _plan(settings, client, specs, _local_schemas(settings, schema_dir, specs))
    finally:
        if own:
            client.close()


def _plan(
    settings: Settings,
    client: SchemaRegistryClient,
    specs: Sequence[ContractSpec],
    local: dict[str, Schema],
) -> Plan:
    subjects = []
    for spec in specs:
        subject = subject_for(spec, settings)
        schema = local[spec.name]
        latest = _latest(settings, client, subject)
        current = _subject_compatibility(settings, client, subject) if latest is not None else None
        messages: tuple[str, ...] = ()
        judged_by: JudgedBy | None = None
        if latest is None:
            action: Action = "NEW_SUBJECT"
            compatible = True
        elif _same(schema, latest):
            action = "UNCHANGED"
            compatible = True
        else:
            action = "NEW_VERSION"
            # Judged under the level apply sets, not the one the registry holds now.
            if _effective_compatibility(settings, client, current) == spec.compatibility:
                judged_by = "registry"
                compatible, messages = _test_compatibility(
                    settings, client, subject, schema, spec.transitive
                )
            else:
                judged_by = "avro-checker"
                compatible, messages = _check_at_level(
                    settings, client, subject, schema, spec.compatibility
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
                judged_by=judged_by,
            )
        )
    return Plan(tuple(subjects))


def apply_contracts(
    settings: Settings,
    *,
    schema_dir: Path | None = None,
    dry_run: bool = False,
    client: SchemaRegistryClient | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    agent_contracts: Sequence[ContractSpec] = (),
) -> Plan:
    """Bring the registry in line with the local contracts; return what was done.

    The plan is made first (and handed to ``on_plan``, which the CLI prints).
    Nothing is written, no level and no version, when any subject in it is
    incompatible: :class:`SchemaIncompatibleError` names the first such subject,
    all of them (``subjects``) and the messages. ``dry_run`` returns the plan only.
    ``agent_contracts`` are the contracts of the agents to govern besides
    flightrec's own (``AgentDefinition.contracts``), under the same rules.
    """
    own = client is None
    client = client if client is not None else registry_client(settings)
    specs = _all_specs(agent_contracts)
    try:
        local = _local_schemas(settings, schema_dir, specs)
        plan = _plan(settings, client, specs, local)
        if on_plan is not None:
            on_plan(plan)
        if dry_run:
            return plan
        refused = [s for s in plan.subjects if not s.compatible]
        if refused:
            raise SchemaIncompatibleError(
                "local schema is incompatible with the registry; nothing was registered",
                subject=refused[0].subject,
                subjects=[s.subject for s in refused],
                messages=[m for s in refused for m in s.messages],
            )
        done: list[SubjectPlan] = []
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
            done.append(_register(settings, client, s, local[s.contract], done))
        return Plan(tuple(done), applied=True)
    finally:
        if own:
            client.close()


def _register(
    settings: Settings,
    client: SchemaRegistryClient,
    s: SubjectPlan,
    schema: Schema,
    done: list[SubjectPlan],
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
            # The plan said compatible: someone changed the subject meanwhile, or
            # the registry's checker disagrees with Avro's. Say what is already done.
            raise SchemaIncompatibleError(
                "the registry refused the new version",
                subject=s.subject,
                messages=[exc.error_message],
                already_applied=[d.subject for d in done if d.changes],
            ) from exc
        raise RegistryError(str(exc), subject=s.subject, status=exc.http_status_code) from exc
    version = registered.version
    if version is None:
        latest = _latest(settings, client, s.subject)
        version = latest.version if latest is not None else None
    return replace(s, registered_version=version, schema_id=registered.schema_id)


def check_contracts(
    settings: Settings,
    *,
    schema_dir: Path | None = None,
    client: SchemaRegistryClient | None = None,
    agent_contracts: Sequence[ContractSpec] = (),
) -> Plan:
    """The CI gate: the plan, whose ``ok`` is False when a local schema is incompatible."""
    return plan_contracts(
        settings, schema_dir=schema_dir, client=client, agent_contracts=agent_contracts
    )


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
