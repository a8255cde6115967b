"""Verifying a run recorded in a unit test, offline: a catalog that knows one
agent and fails the test if replay asks for a live model or tool; and an
executor with one canned answer to record such a run with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from flightrec.agents.agent import Agent
from flightrec.agents.model import Model
from flightrec.contracts.events import CotEvent
from flightrec.replay.history import build_histories
from flightrec.replay.replayer import Replayer
from flightrec.tools.base import ToolExecutor, ToolOutcome

__all__ = ["CannedTools", "OneAgentCatalog", "assert_reproduces"]


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


class CannedTools:
    """An executor allowing ``tools`` (described to no one) that answers every
    call with ``outcome``, or raises ``error`` as an executor must not."""

    def __init__(
        self, *tools: str, outcome: ToolOutcome | None = None, error: Exception | None = None
    ) -> None:
        self.allowed = frozenset(tools)
        self._outcome = outcome
        self._error = error

    def describe(self) -> list[dict[str, Any]]:
        return []

    async def call(self, tool: str, arguments: Mapping[str, Any], **_: Any) -> ToolOutcome:
        if self._error is not None:
            raise self._error
        assert self._outcome is not None, "CannedTools needs an outcome or an error"
        return self._outcome
