"""OpenAIModel over real HTTP against the fake OpenAI-compatible server.

The real ``openai`` client runs end to end; nothing of it is mocked.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from flightrec.agents.agent import Agent
from flightrec.agents.context import RunContext
from flightrec.agents.model import Message, ModelRequest, ModelTurn, request_hash
from flightrec.agents.models.openai_model import OpenAIModel, retry_after_s
from flightrec.agents.runner import run_agent
from flightrec.agents.steps import AgentStep, DecisionStep, ThoughtStep
from flightrec.contracts.events import CotEvent, SourceRef
from flightrec.contracts.settings import Settings
from flightrec.testing.openai_server import FakeOpenAIServer, ScriptedResponse, completion_body
from flightrec.tools.toolset import Toolset

THOUGHT = AgentStep(step=ThoughtStep(type="thought", reasoning="look at the income"))
DECISION = AgentStep(
    step=DecisionStep(
        type="decision",
        reasoning="policy met",
        outcome="APPROVE",
        reasons=["score 720 above 660"],
        conditions=["direct debit"],
        confidence=0.9,
    )
)
TRANSCRIPT = [
    Message(role="system", content="You underwrite loans."),
    Message(role="user", content="application data"),
    Message(role="tool", content='{"tool":"x","status":"ok"}'),
]


class Sleeps:
    """Records backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as srv:
        yield srv


def make_model(server: FakeOpenAIServer, sleeps: Sleeps | None = None, **kw: object) -> OpenAIModel:
    options: dict[str, object] = {"timeout_s": 5.0, "max_retries": 2, "seed": 7}
    options.update(kw)
    return OpenAIModel(
        base_url=server.base_url,
        model="gpt-test",
        api_key="sk-test",
        sleep=sleeps or Sleeps(),
        **options,  # type: ignore[arg-type]
    )


async def ask(model: OpenAIModel) -> ModelTurn:
    async with model:
        return await model.next_step(ModelRequest(TRANSCRIPT, AgentStep))


def statuses(turn: ModelTurn) -> list[tuple[str, str | None]]:
    return [(a.status, a.error_type) for a in turn.attempts]


async def test_valid_structured_step(server: FakeOpenAIServer) -> None:
    server.enqueue(ScriptedResponse.step(THOUGHT, response_id="chatcmpl-1"))
    model = make_model(server)
    turn = await ask(model)

    assert turn.output == THOUGHT
    (attempt,) = turn.attempts
    assert attempt.status == "ok" and attempt.call_attempt == 1
    assert (attempt.input_tokens, attempt.output_tokens) == (120, 40)
    assert attempt.response_id == "chatcmpl-1" and attempt.response_model == "gpt-test"
    assert attempt.request_hash == request_hash(model.info, TRANSCRIPT, AgentStep)
    assert AgentStep.model_validate_json(attempt.output_json or "") == THOUGHT
    (sent,) = server.requests
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["strict"] is True
    assert sent["seed"] == 7 and sent["temperature"] == 0.0
    # Tool results travel as labelled user messages (no native tool_call ids).
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "user"]


async def test_refusal_is_a_terminal_error_attempt(server: FakeOpenAIServer) -> None:
    server.enqueue(ScriptedResponse.refusal("I won't assess this."), ScriptedResponse.step(THOUGHT))
    turn = await ask(make_model(server))
    assert turn.output is None
    assert statuses(turn) == [("error", "ModelRefusalError")]
    assert "I won't assess this." in (turn.attempts[0].error_message or "")
    assert server.pending == 1  # not retried


async def test_invalid_output_is_fed_back_then_retried(server: FakeOpenAIServer) -> None:
    server.enqueue(
        ScriptedResponse.content('{"step": {"type": "thought"}}'), ScriptedResponse.step(THOUGHT)
    )
    turn = await ask(make_model(server))
    assert turn.output == THOUGHT
    assert statuses(turn) == [("error", "ModelOutputError"), ("ok", None)]
    assert turn.attempts[0].output_json == '{"step": {"type": "thought"}}'
    assert "reasoning" in (turn.attempts[0].error_message or "")
    retry = server.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": '{"step": {"type": "thought"}}'}
    assert "not a valid step" in retry[-1]["content"]
    assert turn.attempts[1].request_hash != turn.attempts[0].request_hash


async def test_output_holding_nan_is_an_output_error_fed_back(server: FakeOpenAIServer) -> None:
    # JSON parsing lets NaN through into the step; no record can hold it.
    nan_step = json.dumps(DECISION.model_dump(mode="json")).replace("0.9", "NaN")
    server.enqueue(ScriptedResponse.content(nan_step), ScriptedResponse.step(DECISION))
    turn = await ask(make_model(server))
    assert turn.output == DECISION
    assert statuses(turn) == [("error", "ModelOutputError"), ("ok", None)]
    assert "cannot be recorded" in (turn.attempts[0].error_message or "")
    assert "$.step.confidence" in (turn.attempts[0].error_message or "")
    assert turn.attempts[0].output_json == nan_step  # what the model said, as text
    assert "not a valid step" in server.requests[1]["messages"][-1]["content"]


async def test_a_lone_surrogate_in_the_reply_is_kept_escaped(server: FakeOpenAIServer) -> None:
    # The body's JSON escapes a lone surrogate; decoded, no UTF-8 writer takes it.
    server.enqueue(
        # json.dumps writes the surrogate as the escape \ud800 (ensure_ascii).
        ScriptedResponse(body=json.dumps(completion_body("oops \ud800"))),
        ScriptedResponse.step(THOUGHT),
    )
    turn = await ask(make_model(server))
    assert turn.output == THOUGHT
    bad = turn.attempts[0]
    assert bad.status == "error" and bad.output_json == "oops \\ud800"
    retry = server.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "oops \\ud800"}


async def test_output_retries_are_bounded(server: FakeOpenAIServer) -> None:
    server.enqueue(*[ScriptedResponse.content("not json at all")] * 3)
    turn = await ask(make_model(server, max_output_retries=1))
    assert turn.output is None
    assert statuses(turn) == [("error", "ModelOutputError")] * 2
    assert server.pending == 1


async def test_length_cut_off_is_an_output_error(server: FakeOpenAIServer) -> None:
    server.enqueue(
        ScriptedResponse.content('{"step": {"ty', finish_reason="length"),
        ScriptedResponse.step(THOUGHT),
    )
    turn = await ask(make_model(server))
    assert statuses(turn) == [("error", "ModelOutputError"), ("ok", None)]
    assert turn.attempts[0].finish_reasons == ("length",)


async def test_content_filter_stop_is_a_terminal_refusal(server: FakeOpenAIServer) -> None:
    # openai's parse raises ContentFilterFinishReasonError on this finish reason;
    # the try is still recorded whole (ids, tokens, what was said) and not retried.
    partial = '{"step": {"type": "thought", "reasoning": "the applic'
    server.enqueue(
        ScriptedResponse.content(
            partial,
            finish_reason="content_filter",
            response_id="chatcmpl-cf",
            prompt_tokens=90,
            completion_tokens=3,
        ),
        ScriptedResponse.step(THOUGHT),
    )
    model = make_model(server)
    turn = await ask(model)

    assert turn.output is None
    (attempt,) = turn.attempts
    assert (attempt.status, attempt.error_type) == ("error", "ModelRefusalError")
    assert attempt.error_message == "stopped by the content filter"
    assert attempt.finish_reasons == ("content_filter",)
    assert attempt.response_id == "chatcmpl-cf" and attempt.response_model == "gpt-test"
    assert (attempt.input_tokens, attempt.output_tokens) == (90, 3)
    assert attempt.output_json == partial  # what the model said before the filter stopped it
    assert attempt.request_hash == request_hash(model.info, TRANSCRIPT, AgentStep)
    assert attempt.call_attempt == 1
    assert server.pending == 1  # terminal: not retried, not fed back


async def test_429_backs_off_as_the_server_asks(server: FakeOpenAIServer) -> None:
    sleeps = Sleeps()
    server.enqueue(
        ScriptedResponse.error(429, "slow down", headers={"retry-after-ms": "250"}),
        ScriptedResponse.error(429, "slow down", headers={"retry-after": "3"}),
        ScriptedResponse.step(THOUGHT),
    )
    turn = await ask(make_model(server, sleeps, backoff_base_s=10.0, backoff_cap_s=60.0))
    assert turn.output == THOUGHT
    assert statuses(turn) == [("error", "ModelUnavailableError")] * 2 + [("ok", None)]
    assert "HTTP 429" in (turn.attempts[0].error_message or "")
    assert sleeps.delays == [0.25, 3.0]


async def test_retry_after_is_capped(server: FakeOpenAIServer) -> None:
    sleeps = Sleeps()
    server.enqueue(
        ScriptedResponse.error(429, headers={"retry-after": "3600"}), ScriptedResponse.step(THOUGHT)
    )
    await ask(make_model(server, sleeps, backoff_cap_s=5.0))
    assert sleeps.delays == [5.0]


async def test_500_retries_then_gives_up(server: FakeOpenAIServer) -> None:
    sleeps = Sleeps()
    server.enqueue(*[ScriptedResponse.error(500, "boom")] * 3)
    turn = await ask(make_model(server, sleeps, backoff_base_s=0.5))
    assert turn.output is None
    assert statuses(turn) == [("error", "ModelUnavailableError")] * 3
    assert [a.call_attempt for a in turn.attempts] == [1, 2, 3]
    assert sleeps.delays == [0.5, 1.0]  # exponential when the server gives no hint


async def test_client_error_is_not_retried(server: FakeOpenAIServer) -> None:
    server.enqueue(ScriptedResponse.error(400, "bad request"), ScriptedResponse.step(THOUGHT))
    turn = await ask(make_model(server))
    assert statuses(turn) == [("error", "ModelError")]
    assert server.pending == 1


async def test_timeout_is_recorded_and_retried(server: FakeOpenAIServer) -> None:
    late = dataclasses.replace(ScriptedResponse.step(THOUGHT), delay_s=5.0)
    server.enqueue(late, ScriptedResponse.step(THOUGHT))
    turn = await ask(make_model(server, timeout_s=0.3))
    assert turn.output == THOUGHT
    assert statuses(turn) == [("error", "ModelUnavailableError"), ("ok", None)]
    assert "timeout" in (turn.attempts[0].error_message or "")


async def test_unreachable_server_is_a_retried_connection_error() -> None:
    sleeps = Sleeps()
    # Port 9 (discard) has no listener here: the connection is refused at once.
    model = OpenAIModel(
        base_url="http://127.0.0.1:9/v1", model="gpt-test", max_retries=1, sleep=sleeps
    )
    async with model:
        turn = await model.next_step(ModelRequest(TRANSCRIPT, AgentStep))
    assert turn.output is None
    assert statuses(turn) == [("error", "ModelUnavailableError")] * 2
    assert all("connection" in (a.error_message or "") for a in turn.attempts)
    assert len(sleeps.delays) == 1


async def test_a_body_without_choices_is_an_output_error(server: FakeOpenAIServer) -> None:
    no_choices = ScriptedResponse(body={**completion_body("{}"), "choices": []})
    server.enqueue(no_choices, ScriptedResponse.step(THOUGHT))
    turn = await ask(make_model(server))
    assert statuses(turn) == [("error", "ModelOutputError"), ("ok", None)]
    assert turn.attempts[0].error_message == "no choices in the response"


def test_retry_after_header_parsing() -> None:
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after_s({}) is None


def test_from_settings_reads_endpoint_and_sampling() -> None:
    settings = Settings(
        openai_base_url="http://127.0.0.1:1/v1",
        model="llama3",
        model_seed=3,
        model_profile="strict",
    )
    info = OpenAIModel.from_settings(settings).info
    assert (info.model, info.seed, info.profile, info.provider) == ("llama3", 3, "strict", "openai")


# ------------------------------------------------------------- through the runner

AGENT = Agent(
    name="a", version="1", prompt_version="p", instructions="Data is data.", tools=(), max_steps=4
)


async def run_through(server: FakeOpenAIServer, **kw: object) -> list[CotEvent]:
    ctx = RunContext(
        trace_id="ef" * 16,
        attempt=1,
        source=SourceRef(topic="t", partition=0, offset=0),
        clock=lambda: datetime(2025, 1, 1, tzinfo=UTC),
    )
    async with make_model(server, **kw) as model:  # type: ignore[arg-type]
        return [
            e
            async for e in run_agent(
                AGENT, model=model, tools=Toolset([]), ctx=ctx, business_key="x", input_view={}
            )
        ]


@pytest.mark.parametrize(
    ("script", "calls", "last", "options"),
    [
        ([ScriptedResponse.step(DECISION)], [("ok", None)], "RUN_COMPLETED", {}),
        ([ScriptedResponse.refusal()], [("error", "ModelRefusalError")], "RUN_FAILED", {}),
        (
            [ScriptedResponse.content("{oops", finish_reason="content_filter")],
            [("error", "ModelRefusalError")],
            "RUN_FAILED",
            {},
        ),
        (
            [ScriptedResponse.content("{oops"), ScriptedResponse.step(DECISION)],
            [("error", "ModelOutputError"), ("ok", None)],
            "RUN_COMPLETED",
            {},
        ),
        (
            [
                ScriptedResponse.error(429, headers={"retry-after-ms": "1"}),
                ScriptedResponse.step(DECISION),
            ],
            [("error", "ModelUnavailableError"), ("ok", None)],
            "RUN_COMPLETED",
            {},
        ),
        (
            [ScriptedResponse.error(500)] * 3,
            [("error", "ModelUnavailableError")] * 3,
            "RUN_FAILED",
            {},
        ),
        (
            # The first answer comes after the client's timeout: a recorded,
            # retried failure, then the decision.
            [
                dataclasses.replace(ScriptedResponse.step(DECISION), delay_s=5.0),
                ScriptedResponse.step(DECISION),
            ],
            [("error", "ModelUnavailableError"), ("ok", None)],
            "RUN_COMPLETED",
            {"timeout_s": 0.3},
        ),
    ],
    ids=["valid", "refusal", "content-filter", "invalid-then-valid", "429", "500", "timeout"],
)
async def test_every_attempt_becomes_a_model_call_event(
    server: FakeOpenAIServer,
    script: list[ScriptedResponse],
    calls: list[tuple[str, str | None]],
    last: str,
    options: dict[str, object],
) -> None:
    server.enqueue(*script)
    events = await run_through(server, **options)
    model_calls = [e for e in events if e.kind == "MODEL_CALL"]
    assert [(c.status, c.error_type) for c in model_calls] == calls
    assert [c.call_attempt for c in model_calls] == list(range(1, len(calls) + 1))
    assert all(c.latency_ms >= 0 and c.request_hash for c in model_calls)
    assert events[-1].kind == last
    decision = events[-2]
    assert decision.kind == "DECISION"
    if last == "RUN_FAILED":
        assert decision.outcome == "REFER"
        assert events[-1].error_type == calls[-1][1]  # type: ignore[union-attr]
    bad = [c for c in model_calls if c.status == "error" and c.output_json is not None]
    for c in bad:  # unparsable output is kept, wrapped as JSON
        assert "unparsed_output" in json.loads(c.output_json or "{}")


async def test_content_filter_run_records_the_finish_reason_and_refers(
    server: FakeOpenAIServer,
) -> None:
    server.enqueue(ScriptedResponse.content("{}", finish_reason="content_filter"))
    events = await run_through(server)
    assert [e.kind for e in events] == ["RUN_STARTED", "MODEL_CALL", "DECISION", "RUN_FAILED"]
    model_call, decision, failed = events[1], events[2], events[3]
    assert model_call.kind == "MODEL_CALL"
    assert model_call.gen_ai_response_finish_reasons == ["content_filter"]
    assert model_call.error_type == "ModelRefusalError"
    assert decision.kind == "DECISION" and decision.outcome == "REFER"
    assert failed.kind == "RUN_FAILED" and failed.error_type == "ModelRefusalError"
    assert failed.retryable is False  # a filtered answer will be filtered again
