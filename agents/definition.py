"""``AgentDefinition``: everything a team declares to run its agent on flightrec.

A team writes one ``AgentDefinition`` in its own package and never edits
flightrec: the input event model and the decision model (pydantic; PII fields
marked with :data:`~flightrec.contracts.model_schema.PII`), the outcome labels
and the fallback a failed run ends in, the business key (the input field that
names the subject), the tools, the instructions per prompt version, the
offline model, budgets, topics and the data-contract rules of its input.
flightrec derives the rest: the Avro schemas of its topics, the structured
output the model is asked for, the decision record it publishes, and the
:class:`~flightrec.agents.agent.Agent` the runner runs (docs/design.md, Agents
as plugins).

Every mistake a definition can hold is refused when it is built, with an
:class:`~flightrec.contracts.errors.AgentDefinitionError` naming the agent and
the field: a run must never be the first to find out.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Literal, Protocol, cast

from pydantic import BaseModel, Field, ValidationError, create_model

from flightrec.agents.agent import DEFAULT_SUBJECT_PROMPT, Agent
from flightrec.agents.model import ClosableModel
from flightrec.agents.steps import DECISION_STEP_FIELDS, AgentStep, output_type_for
from flightrec.contracts.errors import AgentDefinitionError, ContractError
from flightrec.contracts.events import SourceRef, TraceId
from flightrec.contracts.model_schema import avro_schema_for, pii_fields_of
from flightrec.contracts.rules import OUTCOME_LABEL_PATTERN, RuleSpec, finite_number_rules
from flightrec.contracts.schema_files import ContractSpec, contract
from flightrec.contracts.settings import Settings
from flightrec.tools.http import HttpClient
from flightrec.tools.toolset import Toolset

__all__ = [
    "AgentDefinition",
    "AgentTopics",
    "ModelFactory",
    "SampleFactory",
    "Simulator",
    "ToolsetFactory",
]

ToolsetFactory = Callable[..., Toolset]
"""``(settings, http, *, allowed) -> Toolset``: the agent's tools, sharing the
worker's HTTP client (``flightrec.tools.loan_tools.build_loan_toolset`` is one)."""

ModelFactory = Callable[[Settings], ClosableModel]
"""``(settings) -> model``: the agent's offline model under ``settings.model_profile``
(used when no OpenAI-compatible endpoint is configured)."""


class SampleFactory(Protocol):
    """``(count, *, seed, run_id) -> inputs``: synthetic input events for ``flightrec
    demo``, the same for the same seed, their business keys carrying ``run_id``."""

    def __call__(self, count: int, *, seed: int, run_id: str) -> Sequence[BaseModel]: ...


_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_LABEL = re.compile(OUTCOME_LABEL_PATTERN)
_REQUIRED_DECISION_FIELDS = ("outcome", "reasons", "confidence")
_RECORD_FIELDS = frozenset(
    {
        "trace_id",
        "attempt",
        "agent",
        "agent_version",
        "prompt_version",
        "model_profile",
        "decided_at",
        "source",
    }
)


@dataclass(frozen=True)
class AgentTopics:
    """The agent's topics, before the settings' prefix: input, decisions, dead letters."""

    input: str
    decisions: str
    dlq: str = ""

    def resolve(self, settings: Settings) -> AgentTopics:
        """The topic names with ``settings``' prefix (the DLQ defaults to ``<input>.dlq``)."""
        prefix = settings.topics.prefix
        return AgentTopics(
            input=prefix + self.input,
            decisions=prefix + self.decisions,
            dlq=prefix + (self.dlq or f"{self.input}.dlq"),
        )


@dataclass(frozen=True)
class Simulator:
    """A service the agent's tools call, which the local stack starts:
    ``python -m <module> --port <port>``, healthy when ``GET <health>`` answers."""

    module: str
    port: int
    health: str = "/health"


def _fail(agent: str, field_name: str, message: str) -> AgentDefinitionError:
    return AgentDefinitionError(f"agent {agent}: {message}", agent=agent, field=field_name)


def _fail_model(agent: str, model_field: str, exc: ContractError) -> AgentDefinitionError:
    """A model the schema mapping refused, named down to its field: ``input_model.age``."""
    where = exc.context.get("field")
    field_name = f"{model_field}.{where}" if where else model_field
    return _fail(agent, field_name, f"{model_field}: {exc}")


def _literal_labels(annotation: Any) -> tuple[str, ...] | None:
    if typing.get_origin(annotation) is Literal:
        return tuple(str(a) for a in typing.get_args(annotation))
    return None


@dataclass(frozen=True)
class AgentDefinition:
    """One team's agent, as flightrec loads it (see the module docstring).

    ``prompts`` maps each prompt version to its instructions (``{profile}`` is
    replaced by the model profile); ``tools`` is the allow-list, and
    ``toolset`` builds the tools it names. ``input_rules`` are CEL conditions
    on the input (a record that breaks one is dead-lettered, on write by the
    producer and on read by the worker); the input contract also gets a
    generated rule per float field that refuses NaN and infinity
    (``<field>_finite``, checked before the team's own). ``builtin_contracts``
    (input, decision) and ``decision_record`` are only for an agent whose contracts
    flightrec shipped before agents were definitions (the loan agent); others
    get their schemas from their models, and publish the business key, the
    decision document and the run's coordinates
    (:attr:`decision_record_model`).
    """

    name: str
    version: str
    description: str
    input_model: type[BaseModel]
    decision_model: type[BaseModel]
    key_field: str
    outcomes: tuple[str, ...]
    fallback_outcome: str
    prompts: Mapping[str, str]
    tools: tuple[str, ...]
    toolset: ToolsetFactory
    offline_model: ModelFactory
    topics: AgentTopics
    fallback_reason: str = "sent to a human reviewer"
    subject_prompt: str = DEFAULT_SUBJECT_PROMPT
    default_prompt_version: str = "v1"
    input_rules: tuple[RuleSpec, ...] = ()
    max_steps: int = 12
    max_tokens: int = 20_000
    deadline_s: float = 60.0
    max_tool_refusals: int = 2
    samples: SampleFactory | None = None
    simulator: Simulator | None = None
    schema_namespace: str = ""
    output_type: type[AgentStep] | None = None
    builtin_contracts: tuple[str, str] | None = None
    decision_record: type[BaseModel] | None = None

    def __post_init__(self) -> None:
        self._check()

    def __repr__(self) -> str:
        return f"AgentDefinition(name={self.name!r}, version={self.version!r})"

    # ------------------------------------------------------------ validation

    def _check(self) -> None:
        name = self.name if isinstance(self.name, str) else repr(self.name)
        if not _NAME.match(name):
            raise _fail(name, "name", "the name must be lower-case letters, digits and '-'")
        if not self.version:
            raise _fail(name, "version", "the version must not be empty")
        self._check_key(name)
        self._check_outcomes(name)
        self._check_decision_model(name)
        if not self.prompts:
            raise _fail(name, "prompts", "at least one prompt version is needed")
        if self.default_prompt_version not in self.prompts:
            raise _fail(
                name,
                "default_prompt_version",
                f"{self.default_prompt_version!r} is not one of the prompt versions "
                f"{sorted(self.prompts)}",
            )
        if len(set(self.tools)) != len(self.tools):
            raise _fail(name, "tools", "the tool allow-list names a tool twice")
        try:
            self.pii_fields  # noqa: B018 (computed for its checks)
        except ContractError as exc:
            raise _fail_model(name, "input_model", exc) from exc
        try:
            agent = self.agent()
        except ValidationError as exc:
            # The Agent's fields are the definition's (budgets, tools, ...):
            # name the one it refused, not the fallback.
            error = exc.errors()[0]
            field_name = str(error["loc"][0]) if error["loc"] else "agent"
            raise _fail(name, field_name, f"{field_name}: {error['msg']}") from exc
        try:
            agent.fallback_document("a check at load time")
        except (ValueError, ContractError) as exc:
            raise _fail(
                name, "fallback_outcome", f"the fallback decision is invalid: {exc}"
            ) from exc
        for rule in self.input_rules:
            if rule.field.split(".")[0] not in self.input_model.model_fields:
                raise _fail(
                    name,
                    f"input_rules.{rule.name}",
                    f"rule {rule.name} checks {rule.field!r}, which is not a field of "
                    f"{self.input_model.__name__}",
                )
        self.contracts  # noqa: B018 (derives the schemas: a model Avro cannot hold fails here)

    def _check_key(self, name: str) -> None:
        info = self.input_model.model_fields.get(self.key_field)
        if info is None:
            raise _fail(
                name,
                "key_field",
                f"business key {self.key_field!r} is not a field of {self.input_model.__name__}",
            )
        if info.annotation is not str:
            raise _fail(
                name,
                "key_field",
                f"business key {self.key_field!r} of {self.input_model.__name__} must be a str",
            )

    def _check_outcomes(self, name: str) -> None:
        if not self.outcomes:
            raise _fail(name, "outcomes", "at least one outcome label is needed")
        if len(set(self.outcomes)) != len(self.outcomes):
            raise _fail(name, "outcomes", "an outcome label is listed twice")
        for label in self.outcomes:
            if not _LABEL.match(label):
                raise _fail(
                    name,
                    "outcomes",
                    f"outcome label {label!r} must be an upper-case name (A-Z, 0-9, _)",
                )
        if self.fallback_outcome not in self.outcomes:
            raise _fail(
                name,
                "fallback_outcome",
                f"fallback outcome {self.fallback_outcome!r} is not one of the outcome labels "
                f"{list(self.outcomes)}",
            )

    def _check_decision_model(self, name: str) -> None:
        fields = self.decision_model.model_fields
        for required in _REQUIRED_DECISION_FIELDS:
            if required not in fields:
                raise _fail(
                    name,
                    f"decision_model.{required}",
                    f"{self.decision_model.__name__} has no {required!r} field "
                    "(every decision model has outcome, reasons and confidence)",
                )
        clash = (set(fields) & (_RECORD_FIELDS | DECISION_STEP_FIELDS | {self.key_field})) - set(
            _REQUIRED_DECISION_FIELDS
        )
        if clash and self.decision_record is None:
            raise _fail(
                name,
                f"decision_model.{sorted(clash)[0]}",
                f"{self.decision_model.__name__} uses names the runtime sets: {sorted(clash)}",
            )
        for field_name, info in fields.items():
            # The fallback decision fills outcome, reasons and confidence; any
            # other field takes its default, so it must have one.
            if field_name not in _REQUIRED_DECISION_FIELDS and info.is_required():
                raise _fail(
                    name,
                    f"decision_model.{field_name}",
                    f"{self.decision_model.__name__}.{field_name} has no default, so the "
                    "fallback decision of a failed run cannot fill it",
                )
        labels = _literal_labels(fields["outcome"].annotation)
        if labels is not None and set(labels) != set(self.outcomes):
            raise _fail(
                name,
                "decision_model.outcome",
                f"the outcome field allows {list(labels)} but the agent declares "
                f"{list(self.outcomes)}",
            )

    # ------------------------------------------------------------- derived

    @cached_property
    def pii_fields(self) -> frozenset[str]:
        """Fields of the input model marked PII (tokenised before the model sees them)."""
        return pii_fields_of(self.input_model)

    @cached_property
    def step_type(self) -> type[AgentStep]:
        """The structured output the model is asked for (one step per call)."""
        if self.output_type is not None:
            return self.output_type
        return output_type_for(self.decision_model, name=_class_prefix(self.name))

    def agent(self, profile: str = "standard", prompt_version: str | None = None) -> Agent:
        """The runnable configuration under model ``profile`` and ``prompt_version``.

        ``KeyError`` for a prompt version the definition lacks (replay relies
        on refusing versions it cannot reproduce)."""
        version = prompt_version or self.default_prompt_version
        instructions = self.prompts[version].replace("{profile}", profile)
        return Agent(
            name=self.name,
            version=self.version,
            prompt_version=version,
            instructions=instructions,
            tools=self.tools,
            output_type=self.step_type,
            model_profile=profile,
            max_steps=self.max_steps,
            max_tokens=self.max_tokens,
            deadline_s=self.deadline_s,
            max_tool_refusals=self.max_tool_refusals,
            decision_model=self.decision_model,
            outcomes=self.outcomes,
            fallback_outcome=self.fallback_outcome,
            fallback_reason=self.fallback_reason,
            subject_prompt=self.subject_prompt,
        )

    def build_toolset(
        self, settings: Settings, http: HttpClient, *, allowed: Iterable[str] | None = None
    ) -> Toolset:
        """The agent's tools (``allowed`` defaults to the agent's allow-list)."""
        return self.toolset(settings, http, allowed=self.tools if allowed is None else allowed)

    def key_of(self, event: BaseModel) -> str:
        """The business key of an input event."""
        return str(getattr(event, self.key_field))

    @cached_property
    def decision_record_model(self) -> type[BaseModel]:
        """The record published on the decision topic: the business key, the
        decision document's fields and the run's coordinates (trace, attempt,
        agent, versions, model profile, time, source)."""
        if self.decision_record is not None:
            return self.decision_record
        fields: dict[str, Any] = {self.key_field: (str, ...)}
        fields["trace_id"] = (TraceId, ...)
        fields["attempt"] = (int, Field(ge=1))
        for field_name, info in self.decision_model.model_fields.items():
            fields[field_name] = (info.annotation, info)
        fields.update(
            agent=(str, ...),
            agent_version=(str, ...),
            prompt_version=(str, ...),
            model_profile=(str, ...),
            decided_at=(datetime, ...),
            source=(SourceRef, ...),
        )
        model = create_model(  # type: ignore[call-overload]
            f"{self.decision_model.__name__}Record",
            __doc__=f"A decision of {self.name}, with the trace that explains it.",
            **fields,
        )
        return cast(type[BaseModel], model)

    @cached_property
    def contracts(self) -> tuple[ContractSpec, ContractSpec]:
        """The (input, decision) contracts of the agent's topics: Avro schemas
        derived from the models (PII fields tagged), the input's CEL rules, its
        dead-letter topic; governed by ``flightrec contracts apply`` like
        flightrec's own."""
        if self.builtin_contracts is not None:
            return contract(self.builtin_contracts[0]), contract(self.builtin_contracts[1])
        namespace = self._namespace()
        try:
            input_schema = avro_schema_for(self.input_model, namespace=namespace)
        except ContractError as exc:
            raise _fail_model(self.name, "input_model", exc) from exc
        try:
            decision_schema = avro_schema_for(self.decision_record_model, namespace=namespace)
        except ContractError as exc:
            raise _fail_model(self.name, "decision_model", exc) from exc
        return (
            ContractSpec.for_model(
                f"{self.name}.input",
                self.topics.input,
                input_schema,
                self.input_model,
                rules=self._input_contract_rules(input_schema),
                dlq_topic=self.topics.dlq or f"{self.topics.input}.dlq",
                key_field=self.key_field,
            ),
            ContractSpec.for_model(
                f"{self.name}.decision",
                self.topics.decisions,
                decision_schema,
                self.decision_record_model,
            ),
        )

    def _input_contract_rules(self, input_schema: Mapping[str, Any]) -> tuple[RuleSpec, ...]:
        """The generated finite-number rules of the input (NaN and infinity are
        refused in every float field), then the team's own."""
        generated = finite_number_rules(input_schema)
        taken = {rule.name: rule.field for rule in generated}
        for rule in self.input_rules:
            if rule.name in taken:
                raise _fail(
                    self.name,
                    f"input_rules.{rule.name}",
                    f"rule {rule.name} has the name of the generated rule that checks "
                    f"{taken[rule.name]} is a finite number; name it otherwise",
                )
        return (*generated, *self.input_rules)

    def _namespace(self) -> str:
        return self.schema_namespace or "io.flightrec.agents." + self.name.replace("-", "_")


def _class_prefix(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
