"""A run that ran out of time live must run out of time at the same step when it
is verified, although replay answers every model turn at once: the deadline is
judged on the recorded time, not on the replay's own clock."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flightrec.agents.agent import Agent
from flightrec.agents.context import RunContext
from flightrec.agents.model import Transcript
from flightrec.agents.runner import run_agent
from flightrec.agents.steps import ThoughtStep
from flightrec.contracts.events import CotEvent, RunFailed, SourceRef
from flightrec.testing.models import FunctionModel, ScriptedModel
from flightrec.tools.base import ToolOutcome

from replay_support import assert_reproduces

AGENT = Agent(
    name="slow-thinker",
    version="1",
    prompt_version="p1",
    instructions="think",
    tools=(),
    max_steps=50,
    deadline_s=35.0,
)


class NoTools:
    allowed: frozenset[str] = frozenset()

    def describe(self) -> list[dict[str, Any]]:
        return []

    async def call(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        call_id: str,
        pii_vault: Mapping[str, str] | None = None,
    ) -> ToolOutcome:
        pytest.fail("no tool is allowed")


class SlowClock:
    """Ten seconds pass between two events of the live run."""

    def __init__(self) -> None:
        self.events = 0
        self.base = datetime(2025, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        self.events += 1
        return self.base + timedelta(seconds=10 * (self.events - 1))

    def elapsed(self) -> float:
        return 10.0 * self.events


async def _record() -> list[CotEvent]:
    clock = SlowClock()
    ctx = RunContext(
        trace_id=f"{7:032x}",
        attempt=1,
        source=SourceRef(topic="loan.applications", partition=0, offset=7),
        clock=clock.now,
        elapsed=clock.elapsed,
    )
    thoughts = [ThoughtStep(type="thought", reasoning=f"thinking {i}") for i in range(20)]
    return [
        event
        async for event in run_agent(
            AGENT,
            model=ScriptedModel(thoughts),
            tools=NoTools(),
            ctx=ctx,
            business_key="app-7",
            input_view={"amount": 1},
        )
    ]


async def test_a_run_that_ran_out_of_time_reproduces() -> None:
    events = await _record()
    failed = [e for e in events if isinstance(e, RunFailed)]
    assert failed and "deadline" in failed[0].reason, "the recording must end on the deadline"
    await assert_reproduces(AGENT, events)


async def test_a_turn_cut_off_at_the_deadline_reproduces() -> None:
    # Live, the deadline passes while the model is answering: the turn's
    # MODEL_CALL is stamped after the deadline, although the run checked its
    # budget (and passed) before asking. Replay must ask the model there too.
    agent = AGENT.model_copy(update={"deadline_s": 0.3})
    asked = 0

    async def think_then_hang(transcript: Transcript) -> ThoughtStep:
        nonlocal asked
        asked += 1
        if asked > 1:
            await asyncio.Event().wait()
        return ThoughtStep(type="thought", reasoning="thinking")

    ctx = RunContext(
        trace_id=f"{8:032x}",
        attempt=1,
        source=SourceRef(topic="loan.applications", partition=0, offset=8),
    )
    events = [
        event
        async for event in run_agent(
            agent,
            model=FunctionModel(think_then_hang),
            tools=NoTools(),
            ctx=ctx,
            business_key="app-8",
            input_view={"amount": 1},
        )
    ]
    assert [e.kind for e in events] == [
        "RUN_STARTED",
        "MODEL_CALL",
        "THOUGHT",
        "MODEL_CALL",
        "DECISION",
        "RUN_FAILED",
    ]
    assert (events[-1].ts - events[0].ts).total_seconds() >= agent.deadline_s
    await assert_reproduces(agent, events)
