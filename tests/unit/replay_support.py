"""Verifying a run recorded in a unit test, offline: a catalog that knows one
agent and fails the test if replay asks for a live model or tool."""

from __future__ import annotations

from typing import Any

import pytest

from flightrec.agents.agent import Agent
from flightrec.agents.model import Model
from flightrec.contracts.events import CotEvent
from flightrec.replay.history import build_histories
from flightrec.replay.replayer import Replayer
from flightrec.tools.base import ToolExecutor

__all__ = ["OneAgentCatalog", "assert_reproduces"]


class OneAgentCatalog:
    """Replay's view of ``agent``, a tool-less agent: verify needs neither a live
    model nor tools."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def agent(self, name: str, version: str, prompt_version: str, profile: str) -> Agent:
        return self._agent

    def tool_descriptions(self, agent: Any) -> list[dict[str, Any]]:
        return []

    def model(self, profile: str) -> Model:
        pytest.fail("verify asked for a live model")

    def live_tools(self, agent: Any) -> ToolExecutor:
        pytest.fail("verify asked for live tools")


async def assert_reproduces(agent: Agent, events: list[CotEvent]) -> None:
    """The one trace of ``events`` verifies as REPRODUCED under ``agent``."""
    (history,) = build_histories(events, chain_verifier=None)
    outcome = await Replayer(OneAgentCatalog(agent)).verify(history)
    assert outcome.status == "REPRODUCED", outcome
