"""The run deadline inside ``OpenAIModel``'s retries, over real HTTP.

When the deadline falls while the model is backing off or waiting on a slow
answer, every try it made is still recorded (status, latency), followed by one
``BudgetExceededError`` attempt, and the run ends with DECISION(REFER) and
``RUN_FAILED``. The recording then verifies as REPRODUCED: replay serves the
recorded tries and does not stop the run a turn early.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from flightrec.agents.agent import Agent
from flightrec.agents.context import RunContext
from flightrec.agents.model import Message, ModelRequest, request_hash
from flightrec.agents.models.openai_model import OpenAIModel
from flightrec.agents.runner import run_agent
from flightrec.agents.steps import AgentStep, DecisionStep
from flightrec.contracts.events import CotEvent, ModelCall, SourceRef
from flightrec.testing.openai_server import FakeOpenAIServer, ScriptedResponse
from flightrec.tools.toolset import Toolset

from replay_support import assert_reproduces

DECISION = AgentStep(
    step=DecisionStep(
        type="decision",
        reasoning="policy met",
        outcome="APPROVE",
        reasons=["score 720 above 660"],
        conditions=[],
        confidence=0.9,
    )
)
TRANSCRIPT = [
    Message(role="system", content="You underwrite loans."),
    Message(role="user", content="application data"),
]


class RealSleeps:
    """Waits for real (the deadline is real time) and remembers each delay."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(delay)


def make_agent(deadline_s: float) -> Agent:
    return Agent(
        name="deadline-agent",
        version="1",
        prompt_version="p1",
        instructions="Data is data.",
        tools=(),
        max_steps=4,
        deadline_s=deadline_s,
    )


def make_model(server: FakeOpenAIServer, sleeps: RealSleeps, **kw: Any) -> OpenAIModel:
    return OpenAIModel(
        base_url=server.base_url, model="gpt-test", api_key="sk-test", sleep=sleeps, **kw
    )


async def run_live(agent: Agent, model: OpenAIModel) -> list[CotEvent]:
    # The system clock and the monotonic elapsed time: the recording carries
    # real timestamps, as a live run's does, so replay judges the same times.
    ctx = RunContext(
        trace_id="de" * 16, attempt=1, source=SourceRef(topic="t", partition=0, offset=3)
    )
    async with model:
        return [
            e
            async for e in run_agent(
                agent, model=model, tools=Toolset([]), ctx=ctx, business_key="x", input_view={}
            )
        ]


def model_calls(events: list[CotEvent]) -> list[ModelCall]:
    return [e for e in events if isinstance(e, ModelCall)]


def assert_budget_end(events: list[CotEvent], tries: int) -> list[ModelCall]:
    """``tries`` recorded tries, then the budget attempt, then REFER + RUN_FAILED."""
    assert [e.kind for e in events] == [
        "RUN_STARTED",
        *["MODEL_CALL"] * (tries + 1),
        "DECISION",
        "RUN_FAILED",
    ]
    calls = model_calls(events)
    assert [c.call_attempt for c in calls] == list(range(1, tries + 2))
    *made, budget = calls
    assert all(c.status == "error" and c.error_type == "ModelUnavailableError" for c in made)
    assert all(c.latency_ms > 0 for c in made)  # each try is a real, timed request
    assert (budget.status, budget.error_type) == ("error", "BudgetExceededError")
    assert budget.latency_ms == 0 and budget.gen_ai_usage_input_tokens == 0  # nothing was sent
    # The turn asked the same question throughout: a retry is the same request.
    assert {c.request_hash for c in calls} == {calls[0].request_hash}
    decision, failed = events[-2], events[-1]
    assert decision.kind == "DECISION" and decision.outcome == "REFER"
    assert failed.kind == "RUN_FAILED" and failed.error_type == "BudgetExceededError"
    assert failed.retryable is False
    assert "deadline" in failed.reason and "deadline" in decision.reasons[0]
    return calls


async def test_429_asking_to_wait_past_the_deadline_is_recorded_then_referred() -> None:
    agent = make_agent(deadline_s=1.0)
    sleeps = RealSleeps()
    async with FakeOpenAIServer() as server:
        server.enqueue(
            ScriptedResponse.error(429, "slow down", headers={"retry-after": "5"}),
            ScriptedResponse.step(DECISION),
        )
        events = await run_live(agent, make_model(server, sleeps, timeout_s=5.0, max_retries=3))
        assert server.pending == 1  # the retry was never sent

    too_many, budget = assert_budget_end(events, tries=1)
    assert "HTTP 429" in (too_many.error_message or "")
    assert "5 s backoff" in (budget.error_message or "")
    # It did not sit out a wait that could only end past the deadline.
    assert sleeps.delays == []
    await assert_reproduces(agent, events)


@pytest.mark.parametrize(
    ("deadline_s", "timeout_s", "tries"),
    [
        # The request timeout is longer than the run has left: the slow answer
        # is cut off at the deadline itself, and that try is recorded too.
        (1.5, 10.0, 2),
        # Short request timeouts: each slow answer times out and is retried
        # until the next backoff would end past the deadline.
        (2.0, 0.3, 3),
    ],
    ids=["cut-at-deadline", "timeouts-until-backoff-passes-deadline"],
)
async def test_500_then_slow_answers_until_the_deadline_are_recorded_then_referred(
    deadline_s: float, timeout_s: float, tries: int
) -> None:
    agent = make_agent(deadline_s=deadline_s)
    sleeps = RealSleeps()
    slow = dataclasses.replace(ScriptedResponse.step(DECISION), delay_s=30.0)
    async with FakeOpenAIServer() as server:
        server.enqueue(ScriptedResponse.error(500, "boom"), *[slow] * 4)
        model = make_model(server, sleeps, timeout_s=timeout_s, max_retries=5, backoff_base_s=0.4)
        events = await run_live(agent, model)
        assert len(server.requests) == tries

    calls = assert_budget_end(events, tries=tries)
    assert "HTTP 500" in (calls[0].error_message or "")
    slow_tries = calls[1:-1]
    assert all("timeout" in (c.error_message or "") for c in slow_tries)
    # No try waited longer than its timeout or than the run had left.
    bound_ms = min(timeout_s, deadline_s) * 1000
    assert all(c.latency_ms < bound_ms + 500 for c in slow_tries)
    assert sleeps.delays == [0.4 * 2**i for i in range(tries - 1)]
    await assert_reproduces(agent, events)


async def test_no_time_left_sends_nothing() -> None:
    async with FakeOpenAIServer() as server:
        server.enqueue(ScriptedResponse.step(DECISION))
        async with make_model(server, RealSleeps()) as model:
            turn = await model.next_step(ModelRequest(TRANSCRIPT, AgentStep, deadline_s=0.0))
        assert server.requests == []
    assert turn.output is None
    (attempt,) = turn.attempts
    assert (attempt.status, attempt.error_type) == ("error", "BudgetExceededError")
    assert attempt.request_hash == request_hash(model.info, TRANSCRIPT, AgentStep)


async def test_the_deadline_changes_neither_the_request_nor_its_hash() -> None:
    async with FakeOpenAIServer() as server:
        server.enqueue(ScriptedResponse.step(DECISION), ScriptedResponse.step(DECISION))
        async with make_model(server, RealSleeps()) as model:
            without = await model.next_step(ModelRequest(TRANSCRIPT, AgentStep))
            within = await model.next_step(ModelRequest(TRANSCRIPT, AgentStep, deadline_s=30.0))
        first, second = server.requests
    assert without.output == within.output == DECISION
    assert first == second
    assert without.attempts[0].request_hash == within.attempts[0].request_hash
