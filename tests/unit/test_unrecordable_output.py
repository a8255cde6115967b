"""Model and tool output that no record can hold ends the run as a recorded failure.

A lone surrogate (``"\\ud800"``: UTF-8 cannot encode it) or a number that is
not finite (NaN, infinity) in what a model or a tool hands back would have
exploded in the chain's hash or in Avro, dead-lettering the input with no
explanation. Instead: a step holding one is refused as ``MODEL_OUTPUT`` and the
run ends with the agent's fallback ``DECISION`` and ``RUN_FAILED``; arguments or
a tool result holding one fail the tool call; text a model reports in an error
is kept escaped. Every event stays recordable: it seals into an intact chain
and encodes as Avro under the registered CoT contract; and the run replays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from flightrec.agents.agent import Agent
from flightrec.agents.context import RunContext
from flightrec.agents.model import Model, ModelAttempt, ModelInfo, ModelRequest, ModelTurn
from flightrec.agents.models.base import as_agent_step, ok_turn
from flightrec.agents.runner import run_agent
from flightrec.agents.steps import AgentStep, ThoughtStep, ToolCallStep
from flightrec.contracts.chain import canonical_bytes, verify_chain
from flightrec.contracts.codec import Codec
from flightrec.contracts.events import (
    CotEvent,
    Decision,
    ModelCall,
    RunFailed,
    SourceRef,
    ToolCall,
    ToolResult,
)
from flightrec.contracts.failures import FailureKind
from flightrec.contracts.settings import Settings
from flightrec.testing import (
    FunctionModel,
    MemoryProducer,
    MemoryRecorder,
    ScriptedModel,
    offline_registry,
)
from flightrec.testing.samples import sample_application
from flightrec.tools.base import ToolExecutor
from flightrec.tools.spec import tool
from flightrec.tools.toolset import Toolset
from flightrec_claims.agent import CLAIMS_AGENT

from replay_support import assert_reproduces
from run_support import TEST_AGENT, decide, make_pipeline

SETTINGS = Settings()
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SOURCE = SourceRef(topic="loan.applications", partition=0, offset=7, key="app-1")
LONE = "\ud800"


@pytest.fixture(scope="module")
def codec() -> Codec:
    codec = Codec(SETTINGS, offline_registry(SETTINGS))
    codec.start_sync()
    return codec


async def record(
    model: Model,
    *,
    agent: Agent = TEST_AGENT,
    tools: ToolExecutor | None = None,
) -> list[CotEvent]:
    """Every event of one run, through the recorder's sealing (as the pipeline does)."""
    recorder = MemoryRecorder()
    ctx = RunContext(trace_id="ab" * 16, attempt=1, source=SOURCE, clock=lambda: NOW)
    async for event in run_agent(
        agent,
        model=model,
        tools=tools or Toolset([]),
        ctx=ctx,
        business_key="app-1",
        input_view={"application_id": "app-1", "amount": 5000.0},
    ):
        await recorder.emit(event)
    return recorder.events


async def assert_recordable(events: Sequence[CotEvent], codec: Codec) -> None:
    """An intact chain, and every event has canonical bytes and round-trips through Avro."""
    assert verify_chain(events).ok
    for event in events:
        canonical_bytes(event)
        assert await codec.decode_cot(await codec.encode_cot(event)) == event


def assert_fell_back(
    events: Sequence[CotEvent], error_type: str, phrase: str, outcome: str = "REFER"
) -> RunFailed:
    """The run ended with the fallback decision and RUN_FAILED naming ``phrase``."""
    *_, decision, failed = events
    assert isinstance(decision, Decision) and decision.outcome == outcome
    assert isinstance(failed, RunFailed) and failed.error_type == error_type
    assert phrase in failed.reason
    assert not any(isinstance(e, Decision) and e.outcome == "APPROVE" for e in events)
    return failed


# ------------------------------------------------------------------ model steps


BAD_STEPS = {
    "lone surrogate in a thought": ThoughtStep(type="thought", reasoning=f"hmm {LONE}"),
    "lone surrogate in a decision reason": decide(reasons=["fine", f"bad {LONE}"]),
    "lone surrogate in a decision's reasoning": decide(reasoning=LONE),
    "lone surrogate in a tool call": ToolCallStep(
        type="tool_call", reasoning=LONE, tool="echo", arguments_json="{}"
    ),
    "NaN confidence": decide(confidence=math.nan),
    "infinite confidence": decide(confidence=math.inf),
}


@pytest.mark.parametrize("step", list(BAD_STEPS.values()), ids=list(BAD_STEPS))
async def test_a_scripted_step_no_record_holds_ends_the_run_failed(step: Any, codec: Codec) -> None:
    events = await record(ScriptedModel([step]))
    assert [e.kind for e in events] == ["RUN_STARTED", "MODEL_CALL", "DECISION", "RUN_FAILED"]
    failed = assert_fell_back(events, FailureKind.MODEL_OUTPUT, "cannot be recorded")
    assert "$.step." in failed.reason  # names where in the step
    call = events[1]
    assert isinstance(call, ModelCall) and call.status == "error"
    await assert_recordable(events, codec)
    await assert_reproduces(TEST_AGENT, events)


class RawTurns:
    """A model that builds its own turns (no ``ok_turn``): whatever it hands back
    reaches the runner as is, output_json included."""

    def __init__(self, step: AgentStep, output_json: str) -> None:
        self.info = ModelInfo(provider="flightrec", model="raw-1", profile="raw")
        self._step = step
        self._output_json = output_json

    async def next_step(self, request: ModelRequest) -> ModelTurn:
        attempt = ModelAttempt(
            request_hash=request.hash(self.info),
            call_attempt=1,
            latency_ms=1.0,
            response_id=f"resp-{LONE}",
            input_tokens=10,
            output_tokens=5,
            output_json=self._output_json,
        )
        return ModelTurn(output=self._step, attempts=(attempt,))


@pytest.mark.parametrize(
    ("step", "output_json"),
    [
        (as_agent_step(decide(reasons=[LONE])), '{"step":{"reasons":["' + LONE + '"]}}'),
        (as_agent_step(decide(confidence=math.nan)), '{"step":{"confidence":NaN}}'),
    ],
    ids=["lone surrogate", "NaN"],
)
async def test_the_runner_refuses_such_a_step_whatever_model_built_the_turn(
    step: AgentStep, output_json: str, codec: Codec
) -> None:
    events = await record(RawTurns(step, output_json))
    assert_fell_back(events, FailureKind.MODEL_OUTPUT, "cannot be recorded")
    call = events[1]
    assert isinstance(call, ModelCall)
    assert (call.status, call.error_type) == ("error", FailureKind.MODEL_OUTPUT)
    # The tokens were spent: the try is kept, only refused.
    assert (call.gen_ai_usage_input_tokens, call.gen_ai_usage_output_tokens) == (10, 5)
    assert call.gen_ai_response_id == "resp-\\ud800"  # escaped, still readable
    assert call.output_json is not None and LONE not in call.output_json
    await assert_recordable(events, codec)
    await assert_reproduces(TEST_AGENT, events)


async def test_a_model_error_quoting_a_lone_surrogate_is_recorded_escaped(codec: Codec) -> None:
    def explode(_: Any) -> AgentStep:
        raise RuntimeError(f"the model said {LONE}")

    class Raising(FunctionModel):
        async def next_step(self, request: ModelRequest) -> ModelTurn:
            raise RuntimeError(f"the client broke on {LONE}")

    for model in (FunctionModel(explode), Raising(explode)):
        events = await record(model)
        failed = assert_fell_back(events, FailureKind.MODEL, "\\ud800")
        assert LONE not in failed.reason
        await assert_recordable(events, codec)


async def test_a_claims_decision_with_a_nan_payout_ends_in_investigate(codec: Codec) -> None:
    step = CLAIMS_AGENT.step_type.model_validate(
        {
            "step": {
                "type": "decision",
                "reasoning": "covered",
                "outcome": "PAY",
                "reasons": ["covered"],
                "confidence": 0.9,
                "payout_amount": math.nan,
                "fraud_signals": [],
            }
        }
    )
    agent = CLAIMS_AGENT.agent()
    events = await record(ScriptedModel([step]), agent=agent, tools=Toolset([]))
    assert_fell_back(events, FailureKind.MODEL_OUTPUT, "payout_amount", outcome="INVESTIGATE")
    await assert_recordable(events, codec)


def test_ok_turn_reports_such_a_step_as_an_output_error() -> None:
    info = ModelInfo(provider="flightrec", model="m", profile="p")
    turn = ok_turn(info, ModelRequest(()), decide(confidence=math.nan))
    assert turn.output is None
    (attempt,) = turn.attempts
    assert (attempt.status, attempt.error_type) == ("error", FailureKind.MODEL_OUTPUT)
    assert "nan is not a finite number" in (attempt.error_message or "")


# ------------------------------------------------------------------------ tools


class Reading(BaseModel):
    value: float
    label: str = ""


class EchoArgs(BaseModel):
    text: str


def reading_tools(value: float, label: str = "") -> Toolset:
    @tool
    async def measure(args: EchoArgs) -> Reading:
        """A tool whose answer may hold what no record can."""
        return Reading(value=value, label=label)

    return Toolset([measure])


TOOL_AGENT = TEST_AGENT.model_copy(update={"tools": ("measure",)})


def measure_step(args: str = '{"text": "x"}') -> ToolCallStep:
    return ToolCallStep(type="tool_call", reasoning="measure", tool="measure", arguments_json=args)


@pytest.mark.parametrize(
    ("value", "label"), [(math.nan, ""), (-math.inf, ""), (1.0, LONE)], ids=["nan", "-inf", "lone"]
)
async def test_a_tool_result_no_record_holds_fails_the_call(
    value: float, label: str, codec: Codec
) -> None:
    model = ScriptedModel([measure_step(), decide()])
    events = await record(model, agent=TOOL_AGENT, tools=reading_tools(value, label))
    result = next(e for e in events if isinstance(e, ToolResult))
    assert (result.status, result.error_type) == ("error", FailureKind.TOOL)
    assert "cannot be recorded" in (result.error_message or "") and result.result_json is None
    # The model was told the call failed, and decided on that.
    assert '"status":"error"' in model.requests[1][-1].content
    assert [e.kind for e in events][-2:] == ["DECISION", "RUN_COMPLETED"]
    await assert_recordable(events, codec)


@pytest.mark.parametrize(
    "args",
    ['{"text": NaN}', '{"text": 1e999}', '{"text": "\\ud800"}'],
    ids=["nan", "overflow", "lone"],
)
async def test_arguments_no_record_holds_are_refused_without_calling_the_tool(
    args: str, codec: Codec
) -> None:
    calls: list[str] = []

    @tool
    async def measure(args: EchoArgs) -> Reading:
        """Must not run."""
        calls.append(args.text)
        return Reading(value=1.0)

    model = ScriptedModel([measure_step(args), decide()])
    events = await record(model, agent=TOOL_AGENT, tools=Toolset([measure]))
    call = next(e for e in events if isinstance(e, ToolCall))
    result = next(e for e in events if isinstance(e, ToolResult))
    assert call.arguments_json.startswith('{"unparsed_arguments":')
    assert result.error_type == FailureKind.TOOL_ARGUMENTS and calls == []
    await assert_recordable(events, codec)


# --------------------------------------------------------------------- pipeline


@pytest.mark.parametrize(
    "step",
    [
        ThoughtStep(type="thought", reasoning=LONE),
        decide(reasons=[LONE]),
        decide(confidence=math.nan),
    ],
    ids=["reasoning", "reason", "nan-confidence"],
)
async def test_the_pipeline_publishes_the_fallback_not_a_dead_letter(
    step: Any, codec: Codec
) -> None:
    producer = MemoryProducer()
    recorder = MemoryRecorder()
    pipeline = make_pipeline(
        SETTINGS, codec, model=ScriptedModel([step]), recorder=recorder, producer=producer
    )
    value = await codec.encode_application(sample_application())

    result = await pipeline.process(value, b"app-1", SOURCE)

    assert (result.status, result.outcome) == ("decided", "REFER")
    assert producer.on(SETTINGS.topics.applications_dlq) == []
    (published,) = producer.on(SETTINGS.topics.decisions)
    assert (await codec.decode_decision(published.value or b"")).outcome == "REFER"
    assert_fell_back(recorder.events, FailureKind.MODEL_OUTPUT, "cannot be recorded")
    await assert_recordable(recorder.events, codec)


def test_a_model_configured_with_a_nan_temperature_is_refused_when_built() -> None:
    # Every request hash and MODEL_CALL holds the temperature: refused at start-up,
    # not on every run.
    with pytest.raises(ValueError, match="finite"):
        ModelInfo(provider="p", model="m", profile="standard", temperature=math.nan)
