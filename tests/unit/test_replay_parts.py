"""ReplayModel and ReplayToolset serve the recording in order and raise a typed
divergence on any other request."""

from __future__ import annotations

import json

import pytest

from flightrec.agents.model import Message, ModelAttempt, ModelInfo, ModelRequest, request_hash
from flightrec.agents.steps import AgentStep
from flightrec.contracts.errors import DivergenceError
from flightrec.contracts.events import CotEvent, CotEventBase, ModelCall, ToolCall
from flightrec.contracts.failures import FailureKind
from flightrec.replay.replay_model import ReplayModel, recorded_turns
from flightrec.replay.replay_tools import ReplayToolset
from flightrec.testing.runs import synthetic_run, synthetic_trace_id
from flightrec.tools.base import ToolOutcome

TRACE = synthetic_trace_id(7)
INFO = ModelInfo(provider="flightrec", model="policy", profile="standard", temperature=0.0, seed=7)


def _transcripts() -> list[list[Message]]:
    base = [Message(role="system", content="you decide loans"), Message(role="user", content="{}")]
    return [
        base,
        [*base, Message(role="assistant", content="t1")],
        [*base, Message(role="tool", content="r")],
    ]


def _recording() -> list[CotEvent]:
    # Synthetic run whose request hashes are those of known transcripts.
    events = synthetic_run(TRACE)
    hashes = iter(request_hash(INFO, t, AgentStep) for t in _transcripts())
    return [
        e.model_copy(update={"request_hash": next(hashes)}) if isinstance(e, ModelCall) else e
        for e in events
    ]


async def test_replay_model_serves_recorded_turns_in_order() -> None:
    model = ReplayModel(_recording())
    assert model.info == INFO
    kinds = []
    for transcript in _transcripts():
        turn = await model.next_step(ModelRequest(transcript, AgentStep))
        assert turn.output is not None
        kinds.append(turn.output.step.type)
        assert turn.attempts[0].input_tokens == 100
    assert kinds == ["thought", "tool_call", "decision"]
    assert model.remaining == 0


async def test_replay_model_raises_on_a_different_request() -> None:
    model = ReplayModel(_recording())
    first, second, _ = _transcripts()
    await model.next_step(ModelRequest(first, AgentStep))
    changed = [*second[:-1], Message(role="assistant", content="something else")]
    with pytest.raises(DivergenceError) as info:
        await model.next_step(ModelRequest(changed, AgentStep))
    assert info.value.step == 1
    assert "something else" in str(info.value.actual)
    assert "recorded step 1" in str(info.value.expected)


async def test_replay_model_raises_past_the_end() -> None:
    model = ReplayModel(_recording())
    for transcript in _transcripts():
        await model.next_step(ModelRequest(transcript, AgentStep))
    with pytest.raises(DivergenceError) as info:
        await model.next_step(ModelRequest(_transcripts()[0], AgentStep))
    assert info.value.step == 3
    assert "no further model call" in str(info.value.expected)


def test_retries_group_into_one_turn() -> None:
    events = _recording()
    retry = events[1].model_copy(update={"call_attempt": 2, "seq": 99})
    failed = events[1].model_copy(update={"status": "error", "output_json": None})
    turns = recorded_turns([failed, retry, *events[3:]])
    assert [len(t.calls) for t in turns] == [2, 1, 1]
    assert turns[0].to_turn().output is not None


def test_an_attempt_is_recorded_and_read_back_field_for_field() -> None:
    attempt = ModelAttempt(
        request_hash="c" * 64,
        call_attempt=2,
        latency_ms=12.5,
        status="error",
        response_model="policy-2025",
        response_id="resp-1",
        finish_reasons=("length",),
        input_tokens=90,
        output_tokens=30,
        error_type=FailureKind.MODEL_OUTPUT,
        error_message="cut off",
        output_json='{"partial":true}',
    )
    # Every field is set, so a field the mapping forgets cannot pass unseen.
    assert all(
        getattr(attempt, name) != field.default for name, field in ModelAttempt.model_fields.items()
    )
    envelope = synthetic_run(TRACE)[1].model_dump(include=set(CotEventBase.model_fields))
    call = ModelCall(**envelope, **attempt.call_fields(INFO))
    assert (call.gen_ai_provider_name, call.gen_ai_request_model) == (INFO.provider, INFO.model)
    assert (call.gen_ai_request_temperature, call.gen_ai_request_seed) == (0.0, 7)
    assert call.gen_ai_response_finish_reasons == ["length"]
    assert ModelAttempt.from_call(call) == attempt
    # Output that is not JSON is kept, wrapped, so the event stays valid.
    prose = attempt.model_copy(update={"output_json": "not json"})
    wrapped = prose.call_fields(INFO)["output_json"]
    assert json.loads(wrapped) == {"unparsed_output": "not json"}


async def test_strict_toolset_serves_recorded_result() -> None:
    tools = ReplayToolset(_recording(), descriptions=[{"name": "credit_bureau"}])
    assert tools.allowed == frozenset({"credit_bureau"})
    outcome = await tools.call("credit_bureau", {"national_id": "tok:cd"}, call_id="call_1")
    assert outcome == ToolOutcome(status="ok", result={"score": 720}, latency_ms=3.0)
    assert tools.remaining == 0


async def test_strict_toolset_raises_on_other_arguments() -> None:
    tools = ReplayToolset(_recording())
    with pytest.raises(DivergenceError) as info:
        await tools.call("credit_bureau", {"national_id": "tok:zz"}, call_id="call_1")
    assert info.value.step == 1
    assert json.loads(str(info.value.expected).split("(", 1)[1][:-1]) == {"national_id": "tok:cd"}
    assert "tok:zz" in str(info.value.actual)


async def test_strict_toolset_raises_on_another_tool() -> None:
    tools = ReplayToolset(_recording())
    with pytest.raises(DivergenceError) as info:
        await tools.call("affordability", {"national_id": "tok:cd"}, call_id="call_1")
    assert str(info.value.actual).startswith("affordability(")


async def test_lenient_toolset_answers_matches_and_marks_the_rest_unavailable() -> None:
    tools = ReplayToolset(_recording(), mode="lenient")
    other = await tools.call("affordability", {"amount": 1}, call_id="c2")
    assert other.status == "error" and other.error_type == FailureKind.TOOL_UNAVAILABLE
    recorded = await tools.call("credit_bureau", {"national_id": "tok:cd"}, call_id="c1")
    assert recorded.result == {"score": 720}
    assert tools.unavailable_calls == 1


def test_strict_toolset_refuses_live_tools() -> None:
    with pytest.raises(ValueError):
        ReplayToolset(_recording(), mode="strict", live=ReplayToolset(_recording(), mode="lenient"))


async def test_strict_toolset_diverges_from_arguments_recorded_with_a_nan() -> None:
    # Recorded before canonical JSON refused NaN: a divergence, not a crash.
    recording = [
        e.model_copy(update={"arguments_json": '{"national_id":NaN}'})
        if isinstance(e, ToolCall)
        else e
        for e in _recording()
    ]
    tools = ReplayToolset(recording)
    with pytest.raises(DivergenceError) as info:
        await tools.call("credit_bureau", {"national_id": "tok:cd"}, call_id="call_1")
    assert "NaN" in str(info.value.expected)
