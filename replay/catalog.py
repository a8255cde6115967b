"""``AgentCatalog`` for replay: the agents, models and tools this installation knows.

Replay re-runs *the code* of the agent a record names, resolved through the
same agent registry the worker uses (``flightrec.agents.registry``): an agent
name, version or prompt version the installed code does not provide is
refused (replaying it with another definition would prove nothing). Live
tools are only created for re-evaluation with live tools enabled.
"""

from __future__ import annotations

from typing import Any

from flightrec.agents.agent import Agent
from flightrec.agents.definition import AgentDefinition
from flightrec.agents.model import Model
from flightrec.agents.registry import AgentRegistry, build_model, known_agents
from flightrec.contracts.errors import AgentDefinitionError, ReplayError
from flightrec.contracts.settings import Settings
from flightrec.replay.replayer import ReplayableAgent
from flightrec.tools.base import ToolExecutor
from flightrec.tools.http import HttpClient

__all__ = ["RegistryCatalog"]


class RegistryCatalog:
    """Resolves recorded (agent, version, prompt version, profile) to installed agents.

    ``agents`` defaults to every agent the installation knows
    (:func:`~flightrec.agents.registry.known_agents`). Use ``async with`` when
    live tools may be needed (it owns an HTTP client).
    """

    def __init__(self, settings: Settings, agents: AgentRegistry | None = None) -> None:
        self._settings = settings
        self._agents = agents if agents is not None else known_agents(settings)
        self._http = HttpClient(settings)
        self._http_started = False
        # Descriptions depend only on the agent and its allowed tools; a batch
        # replays thousands of runs of the same agent.
        self._descriptions: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}

    async def __aenter__(self) -> RegistryCatalog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def agents(self) -> AgentRegistry:
        """The agents this catalog resolves names against."""
        return self._agents

    async def start_live_tools(self) -> None:
        """Open the HTTP client live tools use (only re-evaluation with live tools)."""
        if not self._http_started:
            await self._http.start()
            self._http_started = True

    async def close(self) -> None:
        """Close the HTTP client if it was opened."""
        if self._http_started:
            await self._http.close()
            self._http_started = False

    def _definition(self, name: str) -> AgentDefinition:
        try:
            return self._agents.get(name)
        except AgentDefinitionError as exc:
            raise ReplayError(
                "the recorded agent is not available in this code base",
                agent=name,
                available=", ".join(self._agents.names),
            ) from exc

    def agent(self, name: str, version: str, prompt_version: str, profile: str) -> Agent:
        """The named agent at ``prompt_version``; refuses names and versions the code lacks."""
        definition = self._definition(name)
        if definition.version != version:
            raise ReplayError(
                "the recorded agent is not available in this code base",
                agent=name,
                agent_version=version,
                available=f"{definition.name} {definition.version}",
            )
        if prompt_version not in definition.prompts:
            raise ReplayError(
                "the prompt version is not available in this code base",
                agent=name,
                prompt_version=prompt_version,
                available=", ".join(definition.prompts),
            )
        return definition.agent(profile, prompt_version)

    def tool_descriptions(self, agent: ReplayableAgent) -> list[dict[str, Any]]:
        """The agent's toolset's descriptions (describing calls nothing).

        Built once per agent and set of allowed tools; callers get a list of
        their own whose descriptions they must not modify."""
        key = (agent.name, tuple(sorted(agent.tools)))
        cached = self._descriptions.get(key)
        if cached is None:
            toolset = self._definition(agent.name).build_toolset(
                self._settings, self._http, allowed=agent.tools
            )
            cached = self._descriptions[key] = toolset.describe()
        return list(cached)

    def model(self, agent: ReplayableAgent, profile: str) -> Model:
        """The configured model (the agent's offline one, or OpenAI-compatible) under ``profile``."""
        settings = self._settings.model_copy(update={"model_profile": profile})
        return build_model(self._definition(agent.name), settings)

    def live_tools(self, agent: ReplayableAgent) -> ToolExecutor:
        """The agent's real tools (the caller must have awaited :meth:`start_live_tools`)."""
        return self._definition(agent.name).build_toolset(
            self._settings, self._http, allowed=agent.tools
        )
