"""Example records of every contract: one event of each CoT kind, an application,
a decision and a replay result. Used by tests, benchmarks and documentation;
deterministic (fixed ids and times) so they can be compared byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flightrec.contracts.events import (
    CotEventBase,
    Decision,
    LoanApplication,
    LoanDecision,
    ModelCall,
    ReplayResult,
    RunCompleted,
    RunFailed,
    RunStarted,
    SourceRef,
    Thought,
    ToolCall,
    ToolResult,
    canonical_json,
)
from flightrec.contracts.failures import FailureKind

__all__ = [
    "SAMPLE_TIME",
    "SAMPLE_TRACE_ID",
    "sample_application",
    "sample_cot_events",
    "sample_decision",
    "sample_replay",
]

SAMPLE_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SAMPLE_TIME = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)


def _envelope(seq: int, **overrides: Any) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "event_id": f"evt-{seq:04d}",
        "trace_id": SAMPLE_TRACE_ID,
        "span_id": f"{seq + 1:016x}",
        "parent_span_id": "00f067aa0ba902b7" if seq else None,
        "attempt": 1,
        "seq": seq,
        "step": seq // 2,
        "agent": "loan-officer",
        "agent_version": "1.4.0",
        "prompt_version": "p-2025-03",
        "source": SourceRef(topic="loan.applications", partition=3, offset=1042, key="app-1"),
        "ts": SAMPLE_TIME,
        "prev_hash": f"{seq:064x}",
    }
    envelope.update(overrides)
    return envelope


def sample_cot_events() -> list[CotEventBase]:
    """One event of every CoT kind, in run order, every optional field set."""
    return [
        RunStarted(
            **_envelope(0),
            application_id="app-1",
            input_json=canonical_json({"amount": 25000.0, "applicant_name": "hmac-sha256:k1:ab"}),
            input_schema_id=7,
            model_profile="standard",
            gen_ai_provider_name="openai",
            gen_ai_request_model="gpt-4o-mini",
            tools=["credit_bureau", "affordability"],
            max_steps=8,
            max_tokens=4000,
            deadline_s=30.5,
            run_config_json=canonical_json({"temperature": 0.0}),
            upstream_traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ModelCall(
            **_envelope(1),
            gen_ai_provider_name="openai",
            gen_ai_request_model="gpt-4o-mini",
            gen_ai_response_model="gpt-4o-mini-2024-07-18",
            gen_ai_request_temperature=0.2,
            gen_ai_request_seed=7,
            gen_ai_response_id="chatcmpl-123",
            gen_ai_response_finish_reasons=["stop"],
            gen_ai_usage_input_tokens=812,
            gen_ai_usage_output_tokens=64,
            request_hash="a" * 64,
            call_attempt=2,
            latency_ms=412.5,
            status="error",
            error_type=FailureKind.MODEL_UNAVAILABLE,
            error_message="429 then ok",
            output_json=canonical_json({"kind": "thought", "reasoning": "check bureau"}),
        ),
        Thought(**_envelope(2), reasoning="Debt-to-income looks high; check the bureau score."),
        ToolCall(
            **_envelope(3),
            tool="credit_bureau",
            call_id="call-1",
            arguments_json=canonical_json({"national_id": "hmac-sha256:k1:cd"}),
            reasoning="need a score",
        ),
        ToolResult(
            **_envelope(4),
            tool="credit_bureau",
            call_id="call-1",
            status="error",
            result_json=canonical_json({"score": 612}),
            error_type=FailureKind.TOOL_TIMEOUT,
            error_message="timed out after 5s",
            retryable=True,
            latency_ms=5001.0,
        ),
        Decision(
            **_envelope(5),
            application_id="app-1",
            outcome="REFER",
            reasons=["score below 650", "DTI 46%"],
            conditions=["manual review"],
            confidence=0.72,
        ),
        RunFailed(
            **_envelope(6),
            error_type=FailureKind.BUDGET_EXCEEDED,
            reason="step budget",
            retryable=True,
        ),
        RunCompleted(
            **_envelope(7),
            outcome="REFER",
            steps=4,
            gen_ai_usage_input_tokens=1624,
            gen_ai_usage_output_tokens=128,
            duration_ms=6120.25,
        ),
    ]


def sample_application(**overrides: Any) -> LoanApplication:
    """A valid loan application (passes every rule)."""
    values: dict[str, Any] = {
        "application_id": "app-1",
        "submitted_at": SAMPLE_TIME,
        "applicant_name": "Ada Lovelace",
        "national_id": "AB123456C",
        "date_of_birth": "1985-12-10",
        "address": "12 St James's Square, London",
        "email": "ada@example.org",
        "bank_account": "GB33BUKB20201555555555",
        "applicant_age": 39,
        "amount": 25000.0,
        "currency": "GBP",
        "term_months": 60,
        "annual_income": 72000.0,
        "monthly_debt_payments": 850.0,
        "employment_status": "EMPLOYED",
        "employment_years": 6.5,
        "purpose": "home improvement",
        "notes": "",
    }
    values.update(overrides)
    return LoanApplication(**values)


def sample_decision() -> LoanDecision:
    """A loan decision."""
    return LoanDecision(
        application_id="app-1",
        trace_id=SAMPLE_TRACE_ID,
        attempt=2,
        outcome="APPROVE",
        reasons=["score 720", "DTI 28%"],
        conditions=["proof of income"],
        confidence=0.91,
        agent="loan-officer",
        agent_version="1.4.0",
        prompt_version="p-2025-03",
        model_profile="standard",
        decided_at=SAMPLE_TIME,
        source=SourceRef(topic="loan.applications", partition=0, offset=7, key=None),
    )


def sample_replay() -> ReplayResult:
    """A re-evaluation result with every optional field set."""
    return ReplayResult(
        replay_id="rep-1",
        replay_of=SAMPLE_TRACE_ID,
        mode="REEVALUATE",
        status="CHANGED",
        attempt=1,
        agent="loan-officer",
        agent_version="1.5.0",
        prompt_version="p-2025-04",
        model_profile="strict",
        old_outcome="APPROVE",
        new_outcome="DECLINE",
        first_diff_step=3,
        expected='{"outcome":"APPROVE"}',
        actual='{"outcome":"DECLINE"}',
        message="policy v2 declines DTI > 40%",
        ts=SAMPLE_TIME,
    )
