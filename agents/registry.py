"""Finding agents: by reference, by entry point, and as one checked set.

A team ships its :class:`~flightrec.agents.definition.AgentDefinition` in its
own package and either names it (``package.module:attribute``, the attribute
being the definition or a function returning one) or declares it in the
``flightrec.agents`` entry-point group, under the agent's name::

    [project.entry-points."flightrec.agents"]
    claims-triage = "flightrec_claims.agent:CLAIMS_AGENT"

The worker, the demo, ``contracts apply``, replay and audit all resolve agents
here, so they agree on what an agent name means (docs/design.md, Agents as
plugins). An :class:`AgentRegistry` is a set the worker may host together:
names and input topics are unique in it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Sequence
from importlib.metadata import entry_points
from typing import Any

from flightrec.agents.definition import AgentDefinition
from flightrec.agents.model import ClosableModel
from flightrec.contracts.errors import AgentDefinitionError
from flightrec.contracts.schema_files import ContractSpec
from flightrec.contracts.settings import Settings

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentRegistry",
    "build_model",
    "discover_agents",
    "known_agents",
    "load_agent",
    "resolve_agents",
]

ENTRY_POINT_GROUP = "flightrec.agents"
"""The entry-point group agents are declared in (name = the agent's name)."""


def _definition(value: Any, where: str) -> AgentDefinition:
    if callable(value) and not isinstance(value, AgentDefinition):
        try:
            value = value()
        except AgentDefinitionError:
            raise  # the factory's definition is wrong: that error names agent and field
        except Exception as exc:  # a class or a function that needs arguments, say
            raise AgentDefinitionError(
                f"{where} is not an AgentDefinition, and calling it failed: "
                f"{type(exc).__name__}: {exc}",
                agent=where,
                field="reference",
            ) from exc
    if not isinstance(value, AgentDefinition):
        raise AgentDefinitionError(
            f"{where} is not an AgentDefinition (it is a {type(value).__name__})",
            agent=where,
            field="reference",
        )
    return value


def load_agent(reference: str) -> AgentDefinition:
    """The definition ``package.module:attribute`` names (or returns, if callable)."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise AgentDefinitionError(
            "an agent reference is 'package.module:attribute'", agent=reference, field="reference"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentDefinitionError(
            f"cannot import {module_name}: {exc}", agent=reference, field="reference"
        ) from exc
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError as exc:
            raise AgentDefinitionError(
                f"{module_name} has no attribute {attribute}", agent=reference, field="reference"
            ) from exc
    return _definition(value, reference)


def discover_agents() -> dict[str, AgentDefinition]:
    """Every agent declared in the ``flightrec.agents`` entry-point group, by name.

    An entry whose name differs from its definition's name is refused: the
    name is how records, settings and commands refer to the agent."""
    found: dict[str, AgentDefinition] = {}
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"{entry.name} ({entry.value})"
        try:
            loaded = entry.load()
        except (ImportError, AttributeError) as exc:
            # An installed package that cannot load its agent: say which entry.
            raise AgentDefinitionError(
                f"entry point {where} cannot be loaded: {exc}", agent=entry.name, field="reference"
            ) from exc
        definition = _definition(loaded, where)
        if definition.name != entry.name:
            raise AgentDefinitionError(
                f"entry point {entry.name!r} loads agent {definition.name!r}",
                agent=definition.name,
                field="name",
            )
        found.setdefault(entry.name, definition)
    return found


class AgentRegistry:
    """Agents that run side by side: unique names, one agent per input topic."""

    def __init__(self, definitions: Iterable[AgentDefinition]) -> None:
        self._by_name: dict[str, AgentDefinition] = {}
        topics: dict[str, str] = {}
        for definition in definitions:
            known = self._by_name.get(definition.name)
            if known is definition:
                continue
            if known is not None:
                raise AgentDefinitionError(
                    f"two agents are named {definition.name}", agent=definition.name, field="name"
                )
            other = topics.get(definition.topics.input)
            if other is not None:
                raise AgentDefinitionError(
                    f"agents {other} and {definition.name} both consume topic "
                    f"{definition.topics.input}",
                    agent=definition.name,
                    field="topics.input",
                )
            topics[definition.topics.input] = definition.name
            self._by_name[definition.name] = definition

    def __iter__(self) -> Iterator[AgentDefinition]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> tuple[str, ...]:
        """The agents' names, in the order they were given."""
        return tuple(self._by_name)

    def get(self, name: str) -> AgentDefinition:
        """The agent called ``name``; ``AgentDefinitionError`` naming the known ones otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            raise AgentDefinitionError(
                f"no agent named {name} (known: {', '.join(self._by_name) or 'none'})",
                agent=name,
                field="name",
            ) from None

    def contracts(self) -> tuple[ContractSpec, ...]:
        """Every agent's contracts (input and decision), for the codec and governance."""
        return tuple(spec for definition in self for spec in definition.contracts)


def resolve_agents(
    references: Sequence[str] | None = None, settings: Settings | None = None
) -> AgentRegistry:
    """The agents named by ``references`` (names of discovered agents, or
    ``module:attribute``), else by ``settings.agents``; all discovered agents
    when both are empty."""
    wanted = list(references or (settings.agents if settings is not None else ()))
    discovered = discover_agents()
    if not wanted:
        return AgentRegistry(discovered.values())
    chosen: list[AgentDefinition] = []
    for reference in wanted:
        if ":" in reference:
            chosen.append(load_agent(reference))
        elif reference in discovered:
            chosen.append(discovered[reference])
        else:
            raise AgentDefinitionError(
                f"no agent named {reference} (installed: {', '.join(discovered) or 'none'}; "
                "or give package.module:attribute)",
                agent=reference,
                field="name",
            )
    return AgentRegistry(chosen)


def known_agents(settings: Settings) -> AgentRegistry:
    """Every agent this installation can name: the installed ones and those
    ``settings.agents`` references by ``module:attribute``. What replay, audit
    and ``agents list`` resolve recorded agent names against."""
    found: dict[str, AgentDefinition] = dict(discover_agents())
    for reference in settings.agents:
        if ":" in reference:
            definition = load_agent(reference)
            found.setdefault(definition.name, definition)
    return AgentRegistry(found.values())


def build_model(definition: AgentDefinition, settings: Settings) -> ClosableModel:
    """The model ``definition`` runs with: an ``OpenAIModel`` when
    ``settings.openai_base_url`` is set (model name from ``settings.model``), else
    the agent's offline model under ``settings.model_profile``. The caller
    closes it with ``aclose``. With ``settings.model_latency_ms`` (a benchmark
    knob) every call first waits that long (:class:`DelayedModel`)."""
    model: ClosableModel
    if settings.openai_base_url:
        # Imported here: the OpenAI client is only loaded when a model uses it.
        from flightrec.agents.models.openai_model import OpenAIModel

        model = OpenAIModel.from_settings(settings)
    else:
        model = definition.offline_model(settings)
    if settings.model_latency_ms > 0:
        from flightrec.agents.models.delayed import DelayedModel

        model = DelayedModel(model, settings.model_latency_ms / 1000)
    return model
