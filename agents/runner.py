"""The runner: one attempt of one run, as an async generator of CoT events.

Live runs and replays execute this same code; only the model, the tools and the
clock differ. Events come out in this order::

    RUN_STARTED
    per step:  MODEL_CALL x attempts (retries included), then one of
               THOUGHT | TOOL_CALL, TOOL_RESULT | DECISION
    RUN_COMPLETED                      (after a DECISION proposed by the model)
    DECISION(fallback), RUN_FAILED     (budget, model or tool-policy failure)

Every event carries the run's business key. A ``DECISION`` carries the
agent's outcome label and its whole decision document; a failed run's is the
agent's fallback (``Agent.fallback_document``), never a hard-coded label.

``TOOL_CALL`` is yielded before the tool runs (record before acting). ``seq``
counts from 0 without gaps; ``step`` is the loop index. ``prev_hash`` stays at
the genesis value: the recorder seals the chain. ``RunContext.now()`` is called
exactly once per event, in order, so replay's recorded clock hands every event
the time it had live.

The runner never raises for model or tool failures: they end the run with a
recorded reason. Output that no record can hold (a number that is not finite,
text UTF-8 cannot encode) is such a failure: a step holding it ends the run as
``MODEL_OUTPUT``, a tool result holding it fails the call as ``TOOL``.
Cancellation propagates, and so do replay's divergence errors (a replay that
stops matching the record must stop).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from flightrec.agents.agent import Agent
from flightrec.agents.context import RunContext
from flightrec.agents.model import Message, Model, ModelAttempt, ModelRequest, ModelTurn
from flightrec.agents.steps import ThoughtStep, ToolCallStep, decision_document
from flightrec.agents.transcript import (
    assistant_message,
    system_message,
    tool_message,
    user_message,
)
from flightrec.contracts.errors import BudgetExceededError, ReplayError, UnrecordableError
from flightrec.contracts.events import (
    CotEvent,
    CotEventBase,
    Decision,
    ModelCall,
    RunCompleted,
    RunFailed,
    RunStarted,
    Thought,
    ToolCall,
    ToolResult,
    canonical_json,
    recordable_text,
)
from flightrec.contracts.failures import AnyFailureKind, FailureKind, failure_kind
from flightrec.tools.base import ToolExecutor, ToolOutcome

__all__ = ["run_agent"]

E = TypeVar("E", bound=CotEventBase)

# How long past the run deadline the runner waits for a model before cutting it
# off. The model is told the deadline and should return by it, with its tries;
# this outer limit only catches a model that ignores it (a cut-off turn loses
# its tries). It only has to cover a model noticing its own timeout and
# returning, which takes milliseconds.
_DEADLINE_GRACE_S = 0.5


class _Emitter:
    """Builds events with the shared envelope and the next ``seq``."""

    def __init__(self, agent: Agent, ctx: RunContext, run_span: str, business_key: str) -> None:
        self._agent = agent
        self._business_key = business_key
        self.ctx = ctx
        self.run_span = run_span
        self.seq = 0
        self.step = 0

    def make(
        self, cls: type[E], *, span_id: str | None = None, parent: str | None = None, **fields: Any
    ) -> E:
        ctx = self.ctx
        event = cls(
            event_id=ctx.new_event_id(),
            trace_id=ctx.trace_id,
            span_id=span_id or self.run_span,
            parent_span_id=parent,
            attempt=ctx.attempt,
            seq=self.seq,
            step=self.step,
            business_key=self._business_key,
            agent=self._agent.name,
            agent_version=self._agent.version,
            prompt_version=self._agent.prompt_version,
            source=ctx.source,
            ts=ctx.now(),
            **fields,
        )
        self.seq += 1
        return event


def _model_call(em: _Emitter, model: Model, attempt: ModelAttempt) -> ModelCall:
    return em.make(
        ModelCall,
        span_id=em.ctx.new_span_id(),
        parent=em.run_span,
        **attempt.call_fields(model.info),
    )


def _check_budget(agent: Agent, step: int, tokens: int, ctx: RunContext) -> None:
    """Raise :class:`BudgetExceededError` when a budget of the run is spent."""
    if step >= agent.max_steps:
        raise BudgetExceededError(
            f"step budget exhausted: {step} of {agent.max_steps} steps used without a decision"
        )
    if tokens >= agent.max_tokens:
        raise BudgetExceededError(
            f"token budget exhausted: {tokens} of {agent.max_tokens} tokens used without a decision"
        )
    if ctx.elapsed_s() >= agent.deadline_s:
        raise BudgetExceededError(
            f"deadline exhausted: {agent.deadline_s:g} s passed without a decision"
        )


def _remaining_s(agent: Agent, ctx: RunContext) -> float:
    return max(0.0, agent.deadline_s - ctx.elapsed_s())


async def _ask(
    agent: Agent, model: Model, transcript: list[Message], ctx: RunContext
) -> tuple[ModelTurn, Message | None]:
    """One model turn as the record can hold it (:func:`_recordable`), and the
    assistant message of its step; failures (including the run deadline)
    become error attempts.

    The model is given the time left (``deadline_s``) so that it stops its own
    retries in time and returns the tries it made, ending on a
    ``BudgetExceededError`` attempt. The outer timeout, a grace later, is only
    the safety net for a model that ignores the deadline.
    """
    started = time.monotonic()
    remaining = _remaining_s(agent, ctx)
    request = ModelRequest(tuple(transcript), agent.output_type, deadline_s=remaining)
    safety_net = asyncio.timeout(remaining + _DEADLINE_GRACE_S)
    error: tuple[FailureKind, str]
    try:
        async with safety_net:
            turn = await model.next_step(request)
    except ReplayError:
        raise
    except TimeoutError as exc:
        if safety_net.expired():
            error = (
                FailureKind.BUDGET_EXCEEDED,
                f"deadline of {agent.deadline_s:g} s reached while the model was answering "
                "(it did not return by the deadline)",
            )
        else:
            error = (FailureKind.MODEL_UNAVAILABLE, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a model must not raise; one that does is recorded, not fatal
        error = (FailureKind.MODEL, f"{type(exc).__name__}: {exc}")
    else:
        return _recordable(turn, request, model)
    attempt = ModelAttempt.failed(
        request.hash(model.info), *error, latency_ms=(time.monotonic() - started) * 1000
    )
    return ModelTurn(output=None, attempts=(attempt.recordable(),)), None


def _recordable(
    turn: ModelTurn, request: ModelRequest, model: Model
) -> tuple[ModelTurn, Message | None]:
    """``turn`` as the record can hold it, and the assistant message of its step.

    Whatever a model hands back, nothing reaches an event, a hash or the next
    request that the record cannot hold: text UTF-8 cannot encode is escaped
    in the attempts (:meth:`ModelAttempt.recordable`), and a step holding such
    text or a number that is not finite is no valid step (it could be neither
    recorded nor shown to the model again): its try is refused as
    ``MODEL_OUTPUT``, naming where, and the run ends in the agent's fallback.
    Building the assistant message is that check: it is the step's canonical JSON.
    """
    attempts = tuple(attempt.recordable() for attempt in turn.attempts)
    if any(new is not old for new, old in zip(attempts, turn.attempts, strict=True)):
        turn = turn.model_copy(update={"attempts": attempts})
    if turn.output is None:
        return turn, None
    try:
        return turn, assistant_message(turn.output)
    except UnrecordableError as exc:
        why = f"the output cannot be recorded: {exc}"
        refused = (
            attempts[-1].refused(FailureKind.MODEL_OUTPUT, why)
            if attempts
            else ModelAttempt.failed(request.hash(model.info), FailureKind.MODEL_OUTPUT, why)
        )
        return ModelTurn(output=None, attempts=(*attempts[:-1], refused)), None


async def _call_tool(
    agent: Agent,
    tools: ToolExecutor,
    ctx: RunContext,
    step: ToolCallStep,
    arguments: Mapping[str, Any] | None,
    call_id: str,
    pii_vault: Mapping[str, str] | None,
) -> ToolOutcome:
    if arguments is None:
        return ToolOutcome(
            status="error",
            error_type=FailureKind.TOOL_ARGUMENTS,
            error_message="arguments_json is not a JSON object",
        )
    if step.tool not in agent.tools and step.tool in tools.allowed:
        # The toolset would run it, but the agent's own allow-list does not name
        # it (a wiring mistake): refuse here rather than trust the toolset alone.
        return ToolOutcome(
            status="error",
            error_type=FailureKind.TOOL_NOT_ALLOWED,
            error_message=f"tool {step.tool!r} is not on agent {agent.name}'s allow-list",
        )
    started = time.monotonic()
    deadline = asyncio.timeout(_remaining_s(agent, ctx))
    try:
        async with deadline:
            return await tools.call(step.tool, arguments, call_id=call_id, pii_vault=pii_vault)
    except ReplayError:
        raise
    except TimeoutError as exc:
        kind = FailureKind.BUDGET_EXCEEDED if deadline.expired() else FailureKind.TOOL_TIMEOUT
        message = (
            "run deadline reached while the tool was running" if deadline.expired() else str(exc)
        )
        return ToolOutcome(
            status="error",
            error_type=kind,
            error_message=message,
            latency_ms=(time.monotonic() - started) * 1000,
        )
    except Exception as exc:  # an executor must not raise; one that does is recorded
        return ToolOutcome(
            status="error",
            error_type=failure_kind(exc),
            error_message=str(exc)[:2000],
            latency_ms=(time.monotonic() - started) * 1000,
        )


def _arguments(text: str) -> tuple[dict[str, Any] | None, str]:
    """The tool arguments in ``text`` and the JSON their ``TOOL_CALL`` records.

    A JSON object is recorded as canonical JSON. Anything else has no
    arguments (the call fails as ``TOOL_ARGUMENTS``) and is recorded as
    ``{"unparsed_arguments": text}``: text that is not an object, and an object
    no record can hold (NaN, an overflowing ``1e999``, an escaped lone
    surrogate: JSON parsing lets each through).
    """
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value, canonical_json(value)
    except ValueError:  # not JSON, or UnrecordableError
        pass
    return None, canonical_json({"unparsed_arguments": text})


def _tool_record(outcome: ToolOutcome) -> tuple[ToolOutcome, str | None]:
    """``outcome`` as the record holds it, and its result's canonical JSON.

    A result holding a number that is not finite or text UTF-8 cannot encode
    can be neither recorded nor shown to the model: the call fails as
    ``TOOL``, naming where. An error message is escaped where UTF-8 cannot
    encode it.
    """
    message = outcome.error_message
    if message is not None and recordable_text(message) is not message:
        outcome = outcome.model_copy(update={"error_message": recordable_text(message)})
    if outcome.result is None:
        return outcome, None
    try:
        return outcome, canonical_json(outcome.result)
    except UnrecordableError as exc:
        refused = ToolOutcome(
            status="error",
            error_type=FailureKind.TOOL,
            error_message=f"the tool's result cannot be recorded: {exc}",
            latency_ms=outcome.latency_ms,
        )
        return refused, None


def _model_failure(turn: ModelTurn) -> tuple[AnyFailureKind, str, bool]:
    """(error type, reason, retryable) of a turn that produced no step."""
    if not turn.attempts:
        return FailureKind.MODEL, "the model returned no attempt and no step", False
    last = turn.attempts[-1]
    error_type = last.error_type or FailureKind.MODEL
    detail = f"{error_type}: {last.error_message}" if last.error_message else str(error_type)
    if error_type == FailureKind.BUDGET_EXCEEDED:
        return error_type, detail, False
    reason = (
        f"model produced no valid step after {len(turn.attempts)} attempt(s); last error {detail}"
    )
    return error_type, reason, error_type == FailureKind.MODEL_UNAVAILABLE


def _decision_or_error(agent: Agent, step: BaseModel) -> tuple[dict[str, Any], str | None]:
    """The decision document of ``step`` and, when it cannot stand, why."""
    document = decision_document(step)
    try:
        document = agent.decision_model.model_validate(document).model_dump(mode="json")
    except ValidationError as exc:
        return document, f"the decision is not a valid {agent.decision_model.__name__}: {exc}"
    outcome = document.get("outcome")
    if outcome not in agent.outcomes:
        return document, (
            f"the model decided {outcome!r}, which is not one of {list(agent.outcomes)}"
        )
    reasons = document.get("reasons")
    if not reasons or not any(str(r).strip() for r in reasons):
        return document, "the model decided without giving any reason"
    confidence = document.get("confidence")
    if not isinstance(confidence, int | float) or not 0.0 <= confidence <= 1.0:
        return document, f"the model gave a confidence of {confidence}, outside [0, 1]"
    return document, None


def _decision(em: _Emitter, document: Mapping[str, Any]) -> Decision:
    return em.make(
        Decision,
        outcome=document["outcome"],
        reasons=list(document["reasons"]),
        confidence=document["confidence"],
        document_json=canonical_json(dict(document)),
    )


async def run_agent(
    agent: Agent,
    *,
    model: Model,
    tools: ToolExecutor,
    ctx: RunContext,
    business_key: str,
    input_view: Mapping[str, Any],
    pii_vault: Mapping[str, str] | None = None,
) -> AsyncIterator[CotEvent]:
    """Run ``agent`` on one input; yield every CoT event of the attempt, in order.

    ``business_key`` names the subject (every event carries it); ``input_view``
    is the input as the model may see it (PII already replaced by tokens);
    ``pii_vault`` maps those tokens to real values for the tools only. The last
    event is ``RUN_COMPLETED`` or ``RUN_FAILED``; both follow a ``DECISION`` (a
    failed run ends in the agent's fallback outcome, never dropped).
    """
    info = model.info
    em = _Emitter(agent, ctx, ctx.new_span_id(), business_key)
    tokens_in = tokens_out = 0
    refusals = 0

    yield em.make(
        RunStarted,
        input_json=canonical_json(dict(input_view)),
        model_profile=info.profile,
        gen_ai_provider_name=info.provider,
        gen_ai_request_model=info.model,
        tools=list(agent.tools),
        max_steps=agent.max_steps,
        max_tokens=agent.max_tokens,
        deadline_s=agent.deadline_s,
        run_config_json=canonical_json(
            {
                "temperature": info.temperature,
                "seed": info.seed,
                "output_type": agent.output_type.__name__,
                "max_tool_refusals": agent.max_tool_refusals,
                "agent_model_profile": agent.model_profile,
            }
        ),
        upstream_traceparent=ctx.upstream_traceparent,
    )

    def fail(error_type: AnyFailureKind, reason: str, retryable: bool = False) -> list[CotEvent]:
        reason = recordable_text(reason)  # it may quote what the model or a tool said
        return [
            _decision(em, agent.fallback_document(reason)),
            em.make(RunFailed, error_type=error_type, reason=reason, retryable=retryable),
        ]

    descriptions = [d for d in tools.describe() if d.get("name") in agent.tools]
    transcript: list[Message] = [
        system_message(agent.instructions, descriptions),
        user_message(business_key, input_view, agent.subject_prompt),
    ]

    while True:
        try:
            _check_budget(agent, em.step, tokens_in + tokens_out, ctx)
        except BudgetExceededError as exc:
            for event in fail(failure_kind(exc), exc.message, exc.retryable):
                yield event
            return

        turn, reply = await _ask(agent, model, transcript, ctx)
        for attempt in turn.attempts:
            yield _model_call(em, model, attempt)
        tokens_in += turn.input_tokens
        tokens_out += turn.output_tokens
        if turn.output is None or reply is None:
            for event in fail(*_model_failure(turn)):
                yield event
            return

        step = turn.output.step
        transcript.append(reply)
        if isinstance(step, ThoughtStep):
            yield em.make(Thought, reasoning=step.reasoning)
        elif isinstance(step, ToolCallStep):
            arguments, arguments_json = _arguments(step.arguments_json)
            call_id = ctx.new_call_id()
            tool_span = ctx.new_span_id()
            yield em.make(
                ToolCall,
                span_id=tool_span,
                parent=em.run_span,
                tool=step.tool,
                call_id=call_id,
                arguments_json=arguments_json,
                reasoning=step.reasoning,
            )
            outcome, result_json = _tool_record(
                await _call_tool(agent, tools, ctx, step, arguments, call_id, pii_vault)
            )
            yield em.make(
                ToolResult,
                span_id=tool_span,
                parent=em.run_span,
                tool=step.tool,
                call_id=call_id,
                status=outcome.status,
                result_json=result_json,
                error_type=outcome.error_type,
                error_message=outcome.error_message,
                retryable=outcome.retryable,
                latency_ms=outcome.latency_ms,
            )
            transcript.append(tool_message(step.tool, call_id, outcome))
            if outcome.error_type == FailureKind.TOOL_NOT_ALLOWED:
                refusals += 1
                if refusals >= agent.max_tool_refusals:
                    reason = (
                        f"the model proposed tools outside the allow-list {refusals} times "
                        f"(last: {step.tool!r})"
                    )
                    for event in fail(FailureKind.TOOL_NOT_ALLOWED, reason):
                        yield event
                    return
        else:
            document, invalid = _decision_or_error(agent, step)
            if invalid is not None:
                for event in fail(FailureKind.MODEL_OUTPUT, invalid):
                    yield event
                return
            yield _decision(em, document)
            yield em.make(
                RunCompleted,
                outcome=document["outcome"],
                steps=em.step + 1,
                gen_ai_usage_input_tokens=tokens_in,
                gen_ai_usage_output_tokens=tokens_out,
                duration_ms=ctx.elapsed_s() * 1000,
            )
            return
        em.step += 1
