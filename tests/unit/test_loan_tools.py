"""The four loan tools through the toolset, against the bureau simulator over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flightrec.contracts.settings import Settings
from flightrec.testing.bureau import credit_report, income_check, start_bureau
from flightrec.tools.base import ToolExecutor
from flightrec.tools.http import HttpClient
from flightrec.tools.loan_policy import POLICIES, get_policy
from flightrec.tools.loan_tools import LOAN_TOOL_NAMES, amortized_payment, build_loan_toolset
from flightrec.tools.toolset import Toolset

REAL_ID = "512-34-8870"
TOKEN = "pii:k1:9b1c44e0aa"


@pytest.fixture
async def bureau_url() -> AsyncIterator[str]:
    runner = await start_bureau("127.0.0.1", 0, slow_s=5.0)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def toolset(bureau_url: str) -> AsyncIterator[Toolset]:
    settings = Settings(bureau_url=bureau_url, tool_timeout_s=0.5)
    async with HttpClient(settings) as http:
        yield build_loan_toolset(settings, http)


def test_toolset_exposes_exactly_the_four_tools() -> None:
    settings = Settings()
    tools = build_loan_toolset(settings, HttpClient(settings))
    assert isinstance(tools, ToolExecutor)
    assert (
        tools.allowed
        == LOAN_TOOL_NAMES
        == {
            "policy_lookup",
            "credit_bureau_report",
            "verify_income",
            "affordability",
        }
    )
    described = {d["name"]: d for d in tools.describe()}
    assert set(described["verify_income"]["parameters"]["required"]) == {
        "application_id",
        "declared_annual_income",
        "employment_status",
        "employment_years",
    }
    assert described["policy_lookup"]["parameters"]["properties"]["profile"]["enum"] == [
        "standard",
        "strict",
    ]
    narrowed = build_loan_toolset(settings, HttpClient(settings), allowed=["affordability"])
    assert narrowed.allowed == {"affordability"}


async def test_policy_lookup_both_profiles(toolset: Toolset) -> None:
    standard = await toolset.call("policy_lookup", {"profile": "standard"}, call_id="c1")
    strict = await toolset.call("policy_lookup", {"profile": "strict"}, call_id="c2")
    assert standard.status == strict.status == "ok"
    assert standard.result is not None and strict.result is not None
    assert standard.result == get_policy("standard").model_dump(mode="json")
    assert standard.result["allowed_currencies"] == ["EUR", "GBP", "USD"]
    # strict is tighter on every axis the contract names
    assert strict.result["min_credit_score"] > standard.result["min_credit_score"]
    assert strict.result["refer_credit_score"] > standard.result["refer_credit_score"]
    assert strict.result["max_dti"] < standard.result["max_dti"]
    assert strict.result["max_amount"] < standard.result["max_amount"]
    unknown = await toolset.call("policy_lookup", {"profile": "lenient"}, call_id="c3")
    assert unknown.error_type == "ToolArgumentsError"


def test_policies_are_internally_consistent() -> None:
    for policy in POLICIES.values():
        assert policy.min_credit_score < policy.refer_credit_score
        assert policy.refer_dti < policy.max_dti
        assert policy.min_amount < policy.max_amount
        assert policy.min_term_months < policy.max_term_months


async def test_credit_report_gets_the_real_id_and_returns_no_pii(toolset: Toolset) -> None:
    outcome = await toolset.call(
        "credit_bureau_report", {"national_id": TOKEN}, call_id="c1", pii_vault={TOKEN: REAL_ID}
    )
    assert outcome.status == "ok", outcome
    # The bureau answered for the real id (the report is a function of the id) ...
    assert outcome.result == credit_report(REAL_ID)
    assert outcome.result != credit_report(TOKEN)
    assert 300 <= outcome.result["credit_score"] <= 850
    # ... and nothing real reached the outcome.
    assert REAL_ID not in outcome.model_dump_json()


async def test_verify_income_happy_path(toolset: Toolset) -> None:
    args = {
        "application_id": "app-1",
        "declared_annual_income": 52000.0,
        "employment_status": "EMPLOYED",
        "employment_years": 4.0,
    }
    outcome = await toolset.call("verify_income", args, call_id="c1")
    assert outcome.status == "ok", outcome
    assert outcome.result == income_check("app-1", 52000.0, "EMPLOYED", 4.0)
    assert outcome.result is not None and outcome.result["method"] == "payroll"


async def test_bureau_500_is_a_retryable_http_error(toolset: Toolset) -> None:
    outcome = await toolset.call("credit_bureau_report", {"national_id": "FAIL500-1"}, call_id="c1")
    assert (outcome.status, outcome.error_type, outcome.retryable) == (
        "error",
        "ToolHTTPError",
        True,
    )
    assert outcome.error_message is not None and "500" in outcome.error_message


async def test_slow_bureau_is_a_retryable_timeout(toolset: Toolset) -> None:
    outcome = await toolset.call("credit_bureau_report", {"national_id": "SLOW-7"}, call_id="c1")
    assert (outcome.status, outcome.error_type, outcome.retryable) == (
        "error",
        "ToolTimeoutError",
        True,
    )


async def test_bureau_host_outside_allow_list(bureau_url: str) -> None:
    settings = Settings(bureau_url=bureau_url, http_allowed_hosts=("bureau.internal",))
    async with HttpClient(settings) as http:
        tools = build_loan_toolset(settings, http)
        outcome = await tools.call("credit_bureau_report", {"national_id": "1"}, call_id="c1")
    assert (outcome.error_type, outcome.retryable) == ("ToolHTTPError", False)
    assert outcome.error_message is not None and "allow-list" in outcome.error_message


async def test_affordability_matches_hand_computed_amortisation(toolset: Toolset) -> None:
    # 10,000 over 36 months at 6% a year: r = 0.005,
    # payment = 10000 * 0.005 / (1 - 1.005**-36) = 304.2194 (standard annuity tables: 304.22).
    # Monthly income 60,000 / 12 = 5,000; existing debt 500.
    # DTI = (500 + 304.2194) / 5000 = 0.16084; PTI = 304.2194 / 5000 = 0.06084.
    args = {
        "amount": 10000,
        "term_months": 36,
        "annual_income": 60000,
        "monthly_debt_payments": 500,
        "annual_rate": 0.06,
    }
    outcome = await toolset.call("affordability", args, call_id="c1")
    assert outcome.status == "ok", outcome
    assert outcome.result == {
        "monthly_payment": 304.22,
        "debt_to_income": 0.1608,
        "payment_to_income": 0.0608,
    }


def test_amortisation_edge_cases() -> None:
    assert amortized_payment(1200, 12, 0.0) == 100.0
    # one month: principal plus one month's interest
    assert amortized_payment(1000, 1, 0.12) == pytest.approx(1010.0)
    # the payments repay the principal: simulate the schedule
    balance, rate = 25000.0, 0.079 / 12
    payment = amortized_payment(25000, 60, 0.079)
    for _ in range(60):
        balance = balance * (1 + rate) - payment
    assert balance == pytest.approx(0.0, abs=1e-6)


async def test_affordability_rejects_nonsense(toolset: Toolset) -> None:
    args = {
        "amount": -5,
        "term_months": 0,
        "annual_income": 0,
        "monthly_debt_payments": 0,
        "annual_rate": 0.05,
    }
    outcome = await toolset.call("affordability", args, call_id="c1")
    assert outcome.error_type == "ToolArgumentsError"
    message = outcome.error_message or ""
    assert "amount" in message and "term_months" in message and "annual_income" in message
