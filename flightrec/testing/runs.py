"""Synthetic recorded runs: event sequences shaped like the runner's, built without
running anything. Used by the lookup benchmark (templates encoded once, then
produced as pre-encoded bytes) and by tests of history, audit and replay parts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

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

__all__ = ["synthetic_run", "synthetic_trace_id"]

_T0 = datetime(2025, 1, 1, tzinfo=UTC)


def synthetic_trace_id(index: int, salt: str = "synthetic") -> str:
    """A valid, deterministic W3C trace id."""
    return hashlib.sha256(f"{salt}:{index}".encode()).hexdigest()[:32]


def synthetic_run(
    trace_id: str,
    *,
    application_id: str = "app-1",
    business_key: str | None = None,
    key_field: str = "application_id",
    document: Mapping[str, object] | None = None,
    legacy: bool = False,
    attempt: int = 1,
    outcome: str = "APPROVE",
    complete: bool = True,
    agent: str = "loan-officer",
    agent_version: str = "1.0.0",
    prompt_version: str = "v1",
    start: datetime = _T0,
) -> list[CotEvent]:
    """One attempt: start, model call, thought, model call, tool call/result,
    model call, decision, completion (``complete=False`` stops after the tool
    result, as a crash would). ``prev_hash`` is left at genesis: chain sealing
    belongs to the recorder.

    The subject is ``business_key`` (default: ``application_id``, the loan
    agent's name for it), found in the input under ``key_field``. Events carry
    it as the runner writes them today: on every envelope, the ``DECISION``
    with its ``document`` (default: the loan decision's four fields).
    ``legacy=True`` writes them as recorded before the envelope had a key:
    ``application_id`` on ``RUN_STARTED`` and ``DECISION`` only, no document."""
    key = business_key if business_key is not None else application_id
    legacy_id = key if legacy else None
    seq = 0
    events: list[CotEvent] = []

    def env(step: int) -> dict[str, object]:
        nonlocal seq
        value = {
            "event_id": f"{trace_id[:8]}-{attempt}-{seq}",
            "trace_id": trace_id,
            "span_id": hashlib.sha256(f"{trace_id}{attempt}{seq}".encode()).hexdigest()[:16],
            "attempt": attempt,
            "seq": seq,
            "step": step,
            "agent": agent,
            "agent_version": agent_version,
            "prompt_version": prompt_version,
            "source": SourceRef(topic="loan.applications", partition=0, offset=7, key=key),
            "ts": start + timedelta(milliseconds=seq),
            "business_key": None if legacy else key,
        }
        seq += 1
        return value

    def call(step: int, output: Mapping[str, object]) -> ModelCall:
        return ModelCall(
            **env(step),  # type: ignore[arg-type]
            gen_ai_provider_name="flightrec",
            gen_ai_request_model="policy",
            gen_ai_request_temperature=0.0,
            gen_ai_request_seed=7,
            request_hash=hashlib.sha256(f"{trace_id}:{step}".encode()).hexdigest(),
            latency_ms=1.0,
            gen_ai_usage_input_tokens=100,
            gen_ai_usage_output_tokens=20,
            output_json=canonical_json({"step": dict(output)}),
        )

    events.append(
        RunStarted(
            **env(0),  # type: ignore[arg-type]
            application_id=legacy_id,
            input_json=canonical_json(
                {key_field: key, "amount": 10000.0, "applicant_name": "tok:ab"}
            ),
            model_profile="standard",
            gen_ai_provider_name="flightrec",
            gen_ai_request_model="policy",
            tools=["credit_bureau"],
            max_steps=8,
            max_tokens=4000,
            deadline_s=30.0,
        )
    )
    thought = {"type": "thought", "reasoning": "check the bureau"}
    events.append(call(0, thought))
    events.append(Thought(**env(0), reasoning="check the bureau"))  # type: ignore[arg-type]
    args = canonical_json({"national_id": "tok:cd"})
    tool = {
        "type": "tool_call",
        "reasoning": "score",
        "tool": "credit_bureau",
        "arguments_json": args,
    }
    events.append(call(1, tool))
    events.append(
        ToolCall(
            **env(1), tool="credit_bureau", call_id="call_1", arguments_json=args, reasoning="score"
        )  # type: ignore[arg-type]
    )
    events.append(
        ToolResult(
            **env(1),  # type: ignore[arg-type]
            tool="credit_bureau",
            call_id="call_1",
            status="ok",
            result_json=canonical_json({"score": 720}),
            latency_ms=3.0,
        )
    )
    if not complete:
        return events
    fields: dict[str, object] = (
        dict(document)
        if document is not None
        else {"outcome": outcome, "reasons": ["score 720"], "conditions": [], "confidence": 0.9}
    )
    events.append(call(2, {"type": "decision", "reasoning": "good score", **fields}))
    events.append(
        Decision(
            **env(2),  # type: ignore[arg-type]
            application_id=legacy_id,
            outcome=outcome,
            reasons=["score 720"],
            confidence=0.9,
            document_json=None if legacy else canonical_json(fields),
        )
    )
    events.append(
        RunCompleted(
            **env(2),  # type: ignore[arg-type]
            outcome=outcome,
            steps=3,
            gen_ai_usage_input_tokens=300,
            gen_ai_usage_output_tokens=60,
            duration_ms=12.0,
        )
    )
    return events
