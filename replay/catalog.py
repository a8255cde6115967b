"""``LoanCatalog``: the agents, models and tools this code base knows, for replay.

Replay re-runs *the code* of the agent a record names. The loan agent is built
by ``flightrec.agents.loan_agent.loan_agent``; an agent name or version the code does not
provide is refused (replaying it with another definition would prove nothing).
Live tools are only created for re-evaluation with live tools enabled.
"""

from __future__ import annotations

from typing import Any

from flightrec.agents.agent import Agent
from flightrec.agents.loan_agent import PROMPT_VERSIONS, build_model, loan_agent
from flightrec.agents.model import Model
from flightrec.contracts.errors import ReplayError
from flightrec.contracts.settings import Settings
from flightrec.replay.replayer import AgentDefinition
from flightrec.tools.base import ToolExecutor
from flightrec.tools.http import HttpClient
from flightrec.tools.loan_tools import build_loan_toolset

__all__ = ["LoanCatalog"]


class LoanCatalog:
    """Resolves recorded (agent, version, prompt version, profile) to the loan agent.

    Use ``async with`` when live tools may be needed (it owns an HTTP client).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._http = HttpClient(settings)
        self._http_started = False
        # Descriptions depend only on the allowed tools; a batch replays
        # thousands of runs of the same agent.
        self._descriptions: dict[tuple[str, ...], list[dict[str, Any]]] = {}

    async def __aenter__(self) -> LoanCatalog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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

    def agent(self, name: str, version: str, prompt_version: str, profile: str) -> Agent:
        """The loan agent at ``prompt_version``; refuses names and versions the code lacks."""
        if prompt_version not in PROMPT_VERSIONS:
            raise ReplayError(
                "the prompt version is not available in this code base",
                agent=name,
                prompt_version=prompt_version,
                available=", ".join(PROMPT_VERSIONS),
            )
        agent = loan_agent(profile=profile, prompt_version=prompt_version)
        if agent.name != name or agent.version != version:
            raise ReplayError(
                "the recorded agent is not available in this code base",
                agent=name,
                agent_version=version,
                available=f"{agent.name} {agent.version}",
            )
        return agent

    def tool_descriptions(self, agent: AgentDefinition) -> list[dict[str, Any]]:
        """The loan toolset's descriptions for ``agent`` (describing calls nothing).

        Built once per set of allowed tools; callers get a list of their own
        whose descriptions they must not modify."""
        key = tuple(sorted(agent.tools))
        cached = self._descriptions.get(key)
        if cached is None:
            toolset = build_loan_toolset(self._settings, self._http, allowed=agent.tools)
            cached = self._descriptions[key] = toolset.describe()
        return list(cached)

    def model(self, profile: str) -> Model:
        """The configured model (policy or OpenAI-compatible) under ``profile``."""
        return build_model(self._settings.model_copy(update={"model_profile": profile}))

    def live_tools(self, agent: AgentDefinition) -> ToolExecutor:
        """The real loan tools (the caller must have awaited :meth:`start_live_tools`)."""
        return build_loan_toolset(self._settings, self._http, allowed=agent.tools)
