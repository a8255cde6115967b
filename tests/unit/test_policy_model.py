"""PolicyModel: realistic steps, decisions that follow the lending policy.

Runs go through the real runner, the real loan toolset and the bureau
simulator in-process (HTTP on a free local port); no broker is needed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from flightrec.agents.context import RunContext
from flightrec.agents.loan_agent import loan_agent
from flightrec.agents.loan_samples import synthetic_applications
from flightrec.agents.models.policy import PolicyModel, underwrite
from flightrec.agents.runner import run_agent
from flightrec.contracts.events import CotEvent, LoanApplication, SourceRef
from flightrec.contracts.settings import Settings
from flightrec.recorder.pii import PiiGuard
from flightrec.tools.http import HttpClient
from flightrec.tools.loan_policy import get_policy
from flightrec.tools.loan_tools import build_loan_toolset

NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


async def assess(
    env: tuple[Settings, HttpClient],
    application: LoanApplication,
    profile: str = "standard",
    offset: int = 0,
) -> tuple[list[CotEvent], dict[str, Any]]:
    settings, http = env
    agent = loan_agent(profile=profile)
    view, vault = PiiGuard(settings).tokenize(application)
    source = SourceRef(topic="loan.applications", partition=0, offset=offset)
    ctx = RunContext(trace_id=f"{offset + 1:032x}", attempt=1, source=source, clock=lambda: NOW)
    events = [
        e
        async for e in run_agent(
            agent,
            model=PolicyModel(profile),
            tools=build_loan_toolset(settings, http, allowed=agent.tools),
            ctx=ctx,
            business_key=application.application_id,
            input_view=view,
            pii_vault=vault,
        )
    ]
    return events, view


def outcome(events: Sequence[CotEvent]) -> str:
    decision = next(e for e in reversed(events) if e.kind == "DECISION")
    return decision.outcome  # type: ignore[union-attr]


def steps(events: Sequence[CotEvent]) -> list[str]:
    out = []
    for e in events:
        if e.kind == "THOUGHT":
            out.append("thought")
        elif e.kind == "TOOL_CALL":
            out.append(e.tool)
        elif e.kind == "DECISION":
            out.append("decision")
    return out


def application(**changes: Any) -> LoanApplication:
    base = synthetic_applications(1, seed=5, now=NOW)[0]
    fields = {
        "national_id": "123-45-6789",
        "applicant_age": 40,
        "amount": 10000.0,
        "currency": "EUR",
        "term_months": 36,
        "annual_income": 60000.0,
        "monthly_debt_payments": 300.0,
        "employment_status": "EMPLOYED",
        "employment_years": 6.0,
        "notes": "",
    }
    fields.update(changes)
    return base.model_copy(update=fields)


async def test_full_assessment_takes_the_underwriting_steps(
    env: tuple[Settings, HttpClient],
) -> None:
    events, view = await assess(env, application())
    assert steps(events) == [
        "thought",
        "policy_lookup",
        "credit_bureau_report",
        "verify_income",
        "affordability",
        "thought",
        "decision",
    ]
    assert events[-1].kind == "RUN_COMPLETED"
    args = {e.tool: json.loads(e.arguments_json) for e in events if e.kind == "TOOL_CALL"}
    assert args["policy_lookup"] == {"profile": "standard"}
    # The token exactly as the model saw it; the toolset swaps in the real value.
    assert args["credit_bureau_report"] == {"national_id": view["national_id"]}
    assert view["national_id"].startswith("pii:")
    assert args["affordability"]["annual_rate"] == get_policy("standard").annual_rate
    assert all(e.status == "ok" for e in events if e.kind == "TOOL_RESULT")
    decision = next(e for e in events if e.kind == "DECISION")
    assert decision.reasons and all(r.strip() for r in decision.reasons)
    tokens = [e.gen_ai_usage_input_tokens for e in events if e.kind == "MODEL_CALL"]
    assert tokens == sorted(tokens) and tokens[0] > 100  # the transcript grows each step


async def test_same_application_same_requests_and_steps(env: tuple[Settings, HttpClient]) -> None:
    first, _ = await assess(env, application())
    second, _ = await assess(env, application())

    def fingerprint(events: Sequence[CotEvent]) -> list[tuple[str, str | None]]:
        return [(e.kind, e.request_hash if e.kind == "MODEL_CALL" else None) for e in events]

    assert fingerprint(first) == fingerprint(second)
    outputs = [e.output_json for e in first if e.kind == "MODEL_CALL"]
    assert outputs == [e.output_json for e in second if e.kind == "MODEL_CALL"]


async def test_hard_knockout_declines_without_a_credit_check(
    env: tuple[Settings, HttpClient],
) -> None:
    events, _ = await assess(env, application(term_months=120, currency="JPY"))
    assert steps(events) == ["thought", "policy_lookup", "thought", "decision"]
    decision = next(e for e in events if e.kind == "DECISION")
    assert decision.outcome == "DECLINE"
    assert any("120 months" in r for r in decision.reasons)
    assert any("JPY" in r for r in decision.reasons)


async def test_bureau_failure_is_retried_once_then_referred(
    env: tuple[Settings, HttpClient],
) -> None:
    events, _ = await assess(env, application(national_id="FAIL500-1"))
    bureau_results = [
        e for e in events if e.kind == "TOOL_RESULT" and e.tool == "credit_bureau_report"
    ]
    assert [r.status for r in bureau_results] == ["error", "error"]
    decision = next(e for e in events if e.kind == "DECISION")
    assert decision.outcome == "REFER"
    assert "credit_bureau_report failed" in decision.reasons[0]
    assert events[-1].kind == "RUN_COMPLETED"


async def test_synthetic_population_yields_all_three_outcomes(
    env: tuple[Settings, HttpClient],
) -> None:
    by_profile: dict[str, Counter[str]] = {"standard": Counter(), "strict": Counter()}
    apps = synthetic_applications(40, seed=3, now=NOW)
    for profile in ("standard", "strict"):
        for i, app in enumerate(apps):
            events, _ = await assess(env, app, profile=profile, offset=i)
            assert events[-1].kind == "RUN_COMPLETED"
            by_profile[profile][outcome(events)] += 1
    counts = by_profile["standard"]
    assert set(counts) == {"APPROVE", "DECLINE", "REFER"}, counts
    # The strict policy never approves more than the standard one.
    assert by_profile["strict"]["APPROVE"] <= counts["APPROVE"]
    assert by_profile["strict"]["DECLINE"] > counts["DECLINE"]


POLICY = get_policy("standard").model_dump()
APP = {"amount": 10000.0, "term_months": 36, "applicant_age": 40, "currency": "EUR"}
GOOD_BUREAU = {"credit_score": 740, "bankruptcies": 0, "delinquencies_24m": 0}
VERIFIED = {"verified": True, "verified_annual_income": 60000.0, "method": "payroll"}
AFFORD = {"monthly_payment": 313.0, "debt_to_income": 0.12, "payment_to_income": 0.06}


@pytest.mark.parametrize(
    ("bureau", "income", "afford", "expected", "phrase"),
    [
        ({}, {}, {}, "APPROVE", "meets the standard policy"),
        ({"credit_score": 540}, {}, {}, "DECLINE", "below the minimum of 580"),
        ({"credit_score": 620}, {}, {}, "REFER", "review band"),
        ({}, {}, {"debt_to_income": 0.5}, "DECLINE", "exceeds the maximum of 45%"),
        ({}, {}, {"debt_to_income": 0.40}, "REFER", "above the review threshold"),
        ({}, {}, {"payment_to_income": 0.3}, "DECLINE", "payment takes 30.0%"),
        ({}, {"verified": False}, {}, "REFER", "could not be verified"),
        ({"credit_score": 540}, {"verified": False}, {}, "DECLINE", "below the minimum"),
    ],
)
def test_underwrite_follows_the_policy_thresholds(
    bureau: dict[str, Any],
    income: dict[str, Any],
    afford: dict[str, Any],
    expected: str,
    phrase: str,
) -> None:
    verdict, reasons, conditions, confidence = underwrite(
        APP, POLICY, {**GOOD_BUREAU, **bureau}, {**VERIFIED, **income}, {**AFFORD, **afford}
    )
    assert verdict == expected
    assert any(phrase in r for r in reasons), reasons
    assert 0.0 <= confidence <= 1.0
    assert bool(conditions) == (expected != "DECLINE")
