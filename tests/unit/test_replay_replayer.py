"""Replayer logic (verify / reevaluate) over a small runner with the documented
``run_agent`` signature, so the comparison, divergence and transition logic is
tested without the loan agent. The golden tests in tests/replay/ run the real
runner and agent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from flightrec.agents.context import RunContext
from flightrec.agents.model import (
    Message,
    Model,
    ModelAttempt,
    ModelInfo,
    ModelRequest,
    ModelTurn,
)
from flightrec.agents.steps import AgentStep, DecisionStep, ThoughtStep, ToolCallStep
from flightrec.contracts.events import (
    CotEvent,
    Decision,
    ModelCall,
    RunCompleted,
    RunStarted,
    SourceRef,
    Thought,
    ToolCall,
    ToolResult,
    canonical_json,
)
from flightrec.replay.history import build_histories
from flightrec.replay.replayer import Candidate, Replayer, summarize_transitions
from flightrec.tools.base import ToolExecutor, ToolOutcome

SOURCE = SourceRef(topic="loan.applications", partition=0, offset=1)


@dataclass(frozen=True)
class MiniAgent:
    name: str = "mini"
    version: str = "1"
    prompt_version: str = "p1"
    tools: tuple[str, ...] = ("score", "income")


class PolicyLike:
    """Deterministic model: score tool, income tool, then decide by score and profile."""

    def __init__(self, profile: str = "standard") -> None:
        self._info = ModelInfo(provider="test", model="policy", profile=profile, seed=1)

    @property
    def info(self) -> ModelInfo:
        return self._info

    async def next_step(self, request: ModelRequest) -> ModelTurn:
        transcript = request.transcript
        tools_seen = [json.loads(m.content) for m in transcript if m.role == "tool"]
        user = json.loads(transcript[1].content)
        step: Any
        if not tools_seen:
            step = ToolCallStep(
                type="tool_call",
                reasoning="score",
                tool="score",
                arguments_json=canonical_json({"id": user["national_id"]}),
            )
        elif len(tools_seen) == 1:
            step = ToolCallStep(
                type="tool_call",
                reasoning="income",
                tool="income",
                arguments_json=canonical_json({"id": user["national_id"]}),
            )
        else:
            score = tools_seen[0]["score"]
            bar = 700 if self._info.profile == "strict" else 600
            outcome = "APPROVE" if score >= bar else ("REFER" if score >= 550 else "DECLINE")
            step = DecisionStep(
                type="decision",
                reasoning="rule",
                outcome=outcome,
                reasons=[f"score {score}"],
                conditions=[],
                confidence=0.8,
            )
        output = AgentStep(step=step)
        attempt = ModelAttempt(
            request_hash=request.hash(self._info),
            call_attempt=1,
            latency_ms=1.0,
            output_json=output.model_dump_json(),
        )
        return ModelTurn(output=output, attempts=(attempt,))


class FixedTools:
    allowed = frozenset({"score", "income"})

    def __init__(self, scores: Mapping[str, int]) -> None:
        self._scores = scores

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": "score"}, {"name": "income"}]

    async def call(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        call_id: str,
        pii_vault: Mapping[str, str] | None = None,
    ) -> ToolOutcome:
        if tool == "score":
            return ToolOutcome(status="ok", result={"score": self._scores[arguments["id"]]})
        return ToolOutcome(status="ok", result={"income": 50000})


async def mini_run(
    agent: MiniAgent,
    *,
    model: Model,
    tools: ToolExecutor,
    ctx: RunContext,
    business_key: str,
    input_view: Mapping[str, Any],
    pii_vault: Mapping[str, str] | None = None,
) -> AsyncIterator[CotEvent]:
    seq = 0

    def env(step: int) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        return {
            "event_id": ctx.new_event_id(),
            "trace_id": ctx.trace_id,
            "span_id": ctx.new_span_id(),
            "attempt": ctx.attempt,
            "seq": seq - 1,
            "step": step,
            "business_key": business_key,
            "agent": agent.name,
            "agent_version": agent.version,
            "prompt_version": agent.prompt_version,
            "source": ctx.source,
            "ts": ctx.now(),
        }

    yield RunStarted(
        **env(0),
        input_json=canonical_json(dict(input_view)),
        model_profile=model.info.profile,
        gen_ai_provider_name=model.info.provider,
        gen_ai_request_model=model.info.model,
        tools=list(agent.tools),
        max_steps=5,
        max_tokens=100,
        deadline_s=5.0,
    )
    transcript = [
        Message(role="system", content=f"prompt {agent.prompt_version} tools {tools.describe()}"),
        Message(role="user", content=canonical_json(dict(input_view))),
    ]
    for step in range(5):
        turn = await model.next_step(ModelRequest(transcript, AgentStep))
        for a in turn.attempts:
            yield ModelCall(
                **env(step),
                gen_ai_provider_name=model.info.provider,
                gen_ai_request_model=model.info.model,
                gen_ai_request_seed=model.info.seed,
                request_hash=a.request_hash,
                latency_ms=a.latency_ms,
                output_json=a.output_json,
            )
        assert turn.output is not None
        out = turn.output.step
        if isinstance(out, ThoughtStep):
            yield Thought(**env(step), reasoning=out.reasoning)
        elif isinstance(out, ToolCallStep):
            call_id = ctx.new_call_id()
            yield ToolCall(
                **env(step), tool=out.tool, call_id=call_id, arguments_json=out.arguments_json
            )
            result = await tools.call(out.tool, json.loads(out.arguments_json), call_id=call_id)
            yield ToolResult(
                **env(step),
                tool=out.tool,
                call_id=call_id,
                status=result.status,
                result_json=canonical_json(result.result) if result.result else None,
                error_type=result.error_type,
                latency_ms=result.latency_ms,
            )
            transcript.append(
                Message(
                    role="tool",
                    content=canonical_json(result.model_dump())
                    if result.status != "ok"
                    else canonical_json(result.result),
                )
            )
        else:
            yield Decision(
                **env(step),
                outcome=out.outcome,
                reasons=out.reasons,
                confidence=out.confidence,
            )
            yield RunCompleted(
                **env(step),
                outcome=out.outcome,
                steps=step + 1,
                gen_ai_usage_input_tokens=0,
                gen_ai_usage_output_tokens=0,
                duration_ms=1.0,
            )
            return


class Catalog:
    """Resolves the mini agent; fails the test if a live model or tool is requested."""

    def __init__(
        self, *, prompt_version: str | None = None, live: ToolExecutor | None = None
    ) -> None:
        self.prompt_version = prompt_version
        self.live = live
        self.models: list[str] = []

    def agent(self, name: str, version: str, prompt_version: str, profile: str) -> MiniAgent:
        return MiniAgent(
            name=name, version=version, prompt_version=self.prompt_version or prompt_version
        )

    def tool_descriptions(self, agent: Any) -> list[dict[str, Any]]:
        return [{"name": "score"}, {"name": "income"}]

    def model(self, agent: Any, profile: str) -> Model:
        self.models.append(profile)
        return PolicyLike(profile)

    def live_tools(self, agent: Any) -> ToolExecutor:
        if self.live is None:
            pytest.fail("replay asked for live tools")
        return self.live


class Untouchable:
    """Verify must never call a model or a tool: any use fails the test."""

    def agent(self, name: str, version: str, prompt_version: str, profile: str) -> MiniAgent:
        return MiniAgent(name=name, version=version, prompt_version=prompt_version)

    def tool_descriptions(self, agent: Any) -> list[dict[str, Any]]:
        return [{"name": "score"}, {"name": "income"}]

    def model(self, agent: Any, profile: str) -> Model:
        pytest.fail("verify asked for a live model")

    def live_tools(self, agent: Any) -> ToolExecutor:
        pytest.fail("verify asked for live tools")


SCORES = {"n1": 720, "n2": 650, "n3": 580, "n4": 500}


async def record(*, prompt_version: str = "p1") -> list[CotEvent]:
    events: list[CotEvent] = []
    for i, national_id in enumerate(SCORES, start=1):
        trace_id = f"{i:032x}"
        ctx = RunContext(
            trace_id=trace_id,
            attempt=1,
            source=SOURCE,
            clock=lambda: datetime(2025, 1, 1, tzinfo=UTC),
        )
        async for event in mini_run(
            MiniAgent(prompt_version=prompt_version),
            model=PolicyLike(),
            tools=FixedTools(SCORES),
            ctx=ctx,
            business_key=f"app-{i}",
            input_view={"national_id": national_id},
        ):
            events.append(event)
    return events


async def test_verify_reproduces_without_touching_model_or_tools() -> None:
    histories = build_histories(await record(), chain_verifier=None)
    replayer = Replayer(Untouchable(), runner=mini_run)
    outcomes = [await replayer.verify(h) for h in histories]
    assert [o.status for o in outcomes] == ["REPRODUCED"] * 4


async def test_another_prompt_version_diverges_at_step_0_readably() -> None:
    (history, *_) = build_histories(await record(), chain_verifier=None)
    outcome = await Replayer(Catalog(prompt_version="p2"), runner=mini_run).verify(history)
    assert outcome.status == "DIVERGED"
    assert outcome.step == 0
    assert outcome.expected == "seq 0 RUN_STARTED: prompt_version=p1"
    assert outcome.actual == "seq 0 RUN_STARTED: prompt_version=p2"


async def test_changed_tool_result_in_the_log_diverges_at_that_step() -> None:
    events = await record()
    # The recorded decision of trace 1 says DECLINE although its score says APPROVE:
    # replay recomputes the decision event and names step 2.
    tampered = [
        e.model_copy(update={"outcome": "DECLINE"})
        if isinstance(e, Decision) and e.trace_id == f"{1:032x}"
        else e
        for e in events
    ]
    (history, *_) = build_histories(tampered, chain_verifier=None)
    outcome = await Replayer(Untouchable(), runner=mini_run).verify(history)
    assert outcome.status == "DIVERGED"
    assert outcome.step == 2
    assert "outcome=DECLINE" in (outcome.expected or "")
    assert "outcome=APPROVE" in (outcome.actual or "")


async def test_aborted_only_trace_is_aborted_not_a_failure() -> None:
    events = [e for e in await record() if e.trace_id == f"{1:032x}"][:4]
    (history,) = build_histories(events, chain_verifier=None)
    outcome = await Replayer(Untouchable(), runner=mini_run).verify(history)
    assert outcome.status == "ABORTED"


async def test_missing_events_at_the_end_diverge() -> None:
    events = [e for e in await record() if e.trace_id == f"{2:032x}"]
    # drop the DECISION, keep RUN_COMPLETED so the attempt still looks complete
    (history,) = build_histories([e for e in events if e.kind != "DECISION"], chain_verifier=None)
    outcome = await Replayer(Untouchable(), runner=mini_run).verify(history)
    assert outcome.status == "ERROR"  # the seq gap makes the record not intact
    assert "missing seq" in outcome.message


async def test_reevaluate_with_strict_profile_changes_what_it_should() -> None:
    histories = build_histories(await record(), chain_verifier=None)
    catalog = Catalog()
    replayer = Replayer(catalog, runner=mini_run)
    outcomes = [await replayer.reevaluate(h, Candidate(model_profile="strict")) for h in histories]
    assert catalog.models == ["strict"] * 4
    assert [(o.old, o.new) for o in outcomes] == [
        ("APPROVE", "APPROVE"),
        ("APPROVE", "REFER"),
        ("REFER", "REFER"),
        ("DECLINE", "DECLINE"),
    ]
    assert [o.status for o in outcomes] == ["UNCHANGED", "CHANGED", "UNCHANGED", "UNCHANGED"]
    transitions = summarize_transitions(outcomes)
    assert transitions == {"APPROVE->REFER": 1}
    assert sum(transitions.values()) == sum(o.status == "CHANGED" for o in outcomes)
    changed = outcomes[1]
    # strict profile: the first model call already differs (profile is in the model info)
    assert changed.first_diff_step == 0
    assert changed.unavailable_tool_calls == 0  # same tool calls: answered from the recording
    result = changed.to_result(datetime(2025, 1, 2, tzinfo=UTC))
    assert (result.mode, result.status, result.replay_of) == ("REEVALUATE", "CHANGED", f"{2:032x}")


async def test_reevaluate_tool_calls_outside_the_recording_are_unavailable_without_live_tools() -> (
    None
):
    events = [e for e in await record() if e.trace_id == f"{1:032x}"]
    # Pretend the recording never called "income": the candidate still will.
    trimmed = [
        e for e in events if not (isinstance(e, ToolCall | ToolResult) and e.tool == "income")
    ]
    (history,) = build_histories(trimmed, chain_verifier=None)
    outcome = await Replayer(Catalog(), runner=mini_run).reevaluate(history, Candidate())
    assert outcome.unavailable_tool_calls == 1
    assert outcome.live_tool_calls == 0
    live = await Replayer(Catalog(live=FixedTools(SCORES)), runner=mini_run).reevaluate(
        history, Candidate(live_tools=True)
    )
    assert live.live_tool_calls == 1 and live.unavailable_tool_calls == 0


class ReorderedTools(Catalog):
    def tool_descriptions(self, agent: Any) -> list[dict[str, Any]]:
        return [{"name": "income"}, {"name": "score"}]


async def test_another_tool_order_diverges_at_the_first_model_request() -> None:
    (history, *_) = build_histories(await record(), chain_verifier=None)
    outcome = await Replayer(ReorderedTools(), runner=mini_run).verify(history)
    assert outcome.status == "DIVERGED"
    assert outcome.step == 0
    assert outcome.message == "the model request differs from the recording"
    assert (outcome.expected or "").startswith("model request ")
    assert "(recorded step 0)" in (outcome.expected or "")
    assert "2 messages, last user" in (outcome.actual or "")
