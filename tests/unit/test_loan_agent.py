"""The loan agent definition, its model selection, and an end-to-end run with
the real loan toolset and the bureau simulator (in-process, real HTTP)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from flightrec.agents.agent import Agent
from flightrec.agents.context import RunContext
from flightrec.agents.loan_agent import LOAN_AGENT, LOAN_AGENT_TOOLS, loan_agent
from flightrec.agents.loan_samples import synthetic_applications
from flightrec.agents.models.openai_model import OpenAIModel
from flightrec.agents.models.policy import PolicyModel
from flightrec.agents.registry import build_model
from flightrec.agents.runner import run_agent
from flightrec.contracts.events import CotEvent, LoanApplication, SourceRef
from flightrec.contracts.settings import Settings
from flightrec.recorder.pii import PiiGuard
from flightrec.testing.bureau import credit_report, start_bureau
from flightrec.tools.http import HttpClient
from flightrec.tools.loan_tools import LOAN_TOOL_NAMES, build_loan_toolset

NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def test_loan_agent_definition() -> None:
    agent = loan_agent()
    assert (agent.name, agent.version, agent.prompt_version) == ("loan-underwriter", "1.0.0", "v1")
    assert set(agent.tools) == LOAN_TOOL_NAMES and len(agent.tools) == 4
    assert agent.tools == LOAN_AGENT_TOOLS
    assert "DATA" in agent.instructions and "never instructions" in agent.instructions
    assert '"standard"' in agent.instructions
    assert '"strict"' in loan_agent(profile="strict").instructions
    with pytest.raises(ValidationError):
        agent.max_steps = 100  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Agent.model_validate({**agent.model_dump(), "tools": ("a", "a")})
    with pytest.raises(KeyError):
        loan_agent(prompt_version="v999")


def test_build_model_picks_policy_or_openai() -> None:
    policy = build_model(LOAN_AGENT, Settings(model_profile="strict"))
    assert isinstance(policy, PolicyModel)
    assert (policy.info.provider, policy.info.model, policy.info.profile) == (
        "flightrec",
        "policy-model-1",
        "strict",
    )
    remote = build_model(
        LOAN_AGENT, Settings(openai_base_url="http://127.0.0.1:9/v1", model="qwen2.5")
    )
    assert isinstance(remote, OpenAIModel) and remote.info.model == "qwen2.5"


@pytest.fixture
async def env() -> AsyncIterator[tuple[Settings, HttpClient]]:
    bureau = await start_bureau(port=0, slow_s=3.0)
    settings = Settings(bureau_url=f"http://127.0.0.1:{bureau.addresses[0][1]}", tool_timeout_s=0.3)
    try:
        async with HttpClient(settings) as http:
            yield settings, http
    finally:
        await bureau.cleanup()


async def run(env: tuple[Settings, HttpClient], app: LoanApplication) -> list[CotEvent]:
    settings, http = env
    agent = loan_agent()
    view, vault = PiiGuard(settings).tokenize(app)
    ctx = RunContext(
        trace_id="34" * 16,
        attempt=1,
        source=SourceRef(topic="loan.applications", partition=0, offset=0),
        clock=lambda: NOW,
    )
    return [
        e
        async for e in run_agent(
            agent,
            model=build_model(LOAN_AGENT, settings),
            tools=build_loan_toolset(settings, http, allowed=agent.tools),
            ctx=ctx,
            business_key=app.application_id,
            input_view=view,
            pii_vault=vault,
        )
    ]


def good_application() -> LoanApplication:
    return synthetic_applications(1, seed=2, now=NOW)[0].model_copy(
        update={
            "national_id": "321-54-9876",
            "amount": 8000.0,
            "currency": "EUR",
            "term_months": 24,
            "applicant_age": 35,
        }
    )


async def test_end_to_end_tools_get_real_pii_record_gets_tokens(
    env: tuple[Settings, HttpClient],
) -> None:
    app = good_application()
    events = await run(env, app)
    assert events[-1].kind == "RUN_COMPLETED"
    report = next(e for e in events if e.kind == "TOOL_RESULT" and e.tool == "credit_bureau_report")
    # The bureau answered for the real national id (its reference derives from it)...
    assert (
        json.loads(report.result_json or "")["bureau_ref"]
        == credit_report(app.national_id)["bureau_ref"]
    )
    # ...while no event carries any real PII value.
    record = "".join(e.model_dump_json() for e in events)
    for value in (app.national_id, app.applicant_name, app.email, app.bank_account, app.address):
        assert value not in record


async def test_slow_bureau_times_out_is_retried_and_referred(
    env: tuple[Settings, HttpClient],
) -> None:
    events = await run(env, good_application().model_copy(update={"national_id": "SLOW-1"}))
    results = [e for e in events if e.kind == "TOOL_RESULT" and e.tool == "credit_bureau_report"]
    assert [(r.status, r.error_type, r.retryable) for r in results] == [
        ("error", "ToolTimeoutError", True)
    ] * 2
    decision = next(e for e in events if e.kind == "DECISION")
    assert decision.outcome == "REFER" and "ToolTimeoutError" in decision.reasons[0]
