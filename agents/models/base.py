"""Helpers shared by the offline models: token estimates and turn building."""

from __future__ import annotations

from typing import Any

from flightrec.agents.model import ModelAttempt, ModelInfo, ModelRequest, ModelTurn, Transcript
from flightrec.agents.steps import AgentStep, DecisionStep, ThoughtStep, ToolCallStep
from flightrec.contracts.errors import UnrecordableError
from flightrec.contracts.events import canonical_json
from flightrec.contracts.failures import FailureKind

__all__ = [
    "StepLike",
    "as_agent_step",
    "error_turn",
    "estimate_tokens",
    "ok_turn",
    "transcript_tokens",
]

StepLike = AgentStep | ThoughtStep | ToolCallStep | DecisionStep
"""A step, bare or wrapped in its ``AgentStep`` envelope."""


def estimate_tokens(text: str) -> int:
    """About four characters per token, the usual rule of thumb for English and
    JSON with BPE tokenizers; at least one token for any non-empty text."""
    return (len(text) + 3) // 4


def transcript_tokens(transcript: Transcript) -> int:
    """Estimated prompt tokens (a few per message for the role framing)."""
    return sum(estimate_tokens(m.content) + 4 for m in transcript)


def as_agent_step(step: StepLike) -> AgentStep:
    """Wrap a bare step in the ``AgentStep`` envelope."""
    return step if isinstance(step, AgentStep) else AgentStep(step=step)


def ok_turn(
    info: ModelInfo,
    request: ModelRequest,
    step: StepLike,
    *,
    response_id: str | None = None,
    latency_ms: float = 0.0,
) -> ModelTurn:
    """A one-attempt successful turn with estimated token usage; a failed one of
    kind ``MODEL_OUTPUT`` when the step holds what no record can (NaN, infinity,
    text UTF-8 cannot encode), as a model that validates its output reports it."""
    output = as_agent_step(step)
    try:
        text = canonical_json(output.model_dump(mode="json"))
    except UnrecordableError as exc:
        why = f"the output cannot be recorded: {exc}"
        return error_turn(info, request, FailureKind.MODEL_OUTPUT, why, latency_ms=latency_ms)
    attempt = _attempt(
        info,
        request,
        latency_ms,
        status="ok",
        response_id=response_id,
        finish_reasons=("stop",),
        output_tokens=estimate_tokens(text),
        output_json=text,
    )
    return ModelTurn(output=output, attempts=(attempt,))


def error_turn(
    info: ModelInfo,
    request: ModelRequest,
    error_type: FailureKind,
    message: str,
    *,
    latency_ms: float = 0.0,
) -> ModelTurn:
    """A one-attempt failed turn (``output=None``)."""
    attempt = _attempt(
        info, request, latency_ms, status="error", error_type=error_type, error_message=message
    )
    return ModelTurn(output=None, attempts=(attempt,))


def _attempt(
    info: ModelInfo, request: ModelRequest, latency_ms: float, **outcome: Any
) -> ModelAttempt:
    # Offline models answer at the first try; input tokens are estimated from the prompt.
    return ModelAttempt(
        request_hash=request.hash(info),
        call_attempt=1,
        latency_ms=latency_ms,
        response_model=info.model,
        input_tokens=transcript_tokens(request.transcript),
        **outcome,
    )
