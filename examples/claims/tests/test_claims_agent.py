"""The claims agent end to end: its definition, its input rules on both CEL
engines, and the offline model driving the runner with the real tools against
the simulator."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import cel
import celpy
import pytest

from flightrec.contracts.events import CotEvent, Decision
from flightrec.contracts.settings import Settings
from flightrec_claims.agent import CLAIMS_AGENT
from flightrec_claims.model import ClaimsRulesModel
from flightrec_claims.models import Claim, ClaimDecision
from flightrec_claims.samples import INJECTION_DESCRIPTIONS, synthetic_claims
from flightrec_claims.simulator import coverage

from claims_support import ClaimsEnv, run_claim

NOW = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
PII_FIELDS = ("policy_number", "claimant_name", "claimant_email", "claimant_phone")


def decision_of(events: list[CotEvent]) -> ClaimDecision:
    decision = next(e for e in events if isinstance(e, Decision))
    return ClaimDecision.model_validate_json(decision.document_json)


def test_definition() -> None:
    assert CLAIMS_AGENT.pii_fields == frozenset(PII_FIELDS)
    agent = CLAIMS_AGENT.agent()
    assert (agent.name, agent.prompt_version, agent.fallback_outcome) == (
        "claims-triage",
        "v1",
        "INVESTIGATE",
    )
    assert "never instructions" in agent.instructions
    assert CLAIMS_AGENT.agent(prompt_version="v2").instructions.startswith(agent.instructions)
    assert isinstance(CLAIMS_AGENT.offline_model(Settings()), ClaimsRulesModel)
    claim = synthetic_claims(1, seed=1, now=NOW)[0]
    assert CLAIMS_AGENT.key_of(claim) == claim.claim_id == "C-1-00000"


def test_samples_are_deterministic_and_unique() -> None:
    assert synthetic_claims(30, seed=5, now=NOW) == synthetic_claims(30, seed=5, now=NOW)
    ids = [c.claim_id for c in synthetic_claims(30, seed=5, run_id="r1", now=NOW)]
    assert len(set(ids)) == 30 and ids[7] == "C-r1-00007"


@pytest.mark.parametrize(
    ("update", "broken"),
    [
        ({}, None),
        ({"claimed_amount": 0.0}, "claim_amount_positive"),
        ({"currency": "eur"}, "claim_currency_code"),
        ({"currency": "EURO"}, "claim_currency_code"),
        ({"claim_type": "BOAT"}, "claim_type_known"),
    ],
)
def test_input_rules_agree_on_both_engines(update: dict[str, object], broken: str | None) -> None:
    message = {**synthetic_claims(1, seed=3, now=NOW)[0].model_dump(mode="json"), **update}
    env = celpy.Environment()
    for rule in CLAIMS_AGENT.input_rules:
        fast = bool(cel.compile(rule.expr).execute(cel.Context({"message": message})))
        reference = env.program(env.compile(rule.expr)).evaluate(
            {"message": celpy.json_to_cel(message)}
        )
        assert fast == bool(reference) == (rule.name != broken), rule.name


async def test_samples_get_all_three_outcomes_and_no_pii_is_recorded(
    claims_env: ClaimsEnv,
) -> None:
    claims = synthetic_claims(40, seed=7, now=NOW)
    outcomes: Counter[str] = Counter()
    for claim in claims:
        events = await run_claim(claims_env, claim)
        assert events[-1].kind == "RUN_COMPLETED"
        decision = decision_of(events)
        outcomes[decision.outcome] += 1
        if decision.outcome != "PAY":
            assert decision.payout_amount == 0.0
        record = "".join(e.model_dump_json() for e in events)
        for field in PII_FIELDS:
            assert getattr(claim, field) not in record
    assert set(outcomes) == {"PAY", "INVESTIGATE", "DENY"}, outcomes


async def test_pay_is_capped_by_the_limit_less_the_deductible(claims_env: ClaimsEnv) -> None:
    for claim in synthetic_claims(40, seed=7, now=NOW):
        events = await run_claim(claims_env, claim)
        decision = decision_of(events)
        if decision.outcome != "PAY":
            continue
        policy = coverage(claim.policy_number)
        assert policy is not None and policy["active"]
        expected = max(
            0.0, min(claim.claimed_amount, policy["coverage_limit"]) - policy["deductible"]
        )
        assert decision.payout_amount == pytest.approx(expected)
        tools = [e.tool for e in events if e.kind == "TOOL_CALL"]
        assert tools == ["policy_coverage", "claim_history", "fraud_screen"]


async def test_injected_description_changes_nothing(claims_env: ClaimsEnv) -> None:
    claim = next(c for c in synthetic_claims(40, seed=7, now=NOW) if len(c.description) > 40)
    plain = decision_of(await run_claim(claims_env, claim))
    for text in INJECTION_DESCRIPTIONS:
        injected = claim.model_copy(update={"description": text})
        decision = decision_of(await run_claim(claims_env, injected))
        # The description's length is all the model reads of it.
        assert decision.outcome == plain.outcome and decision.payout_amount <= claim.claimed_amount


async def test_unknown_policy_is_investigated(claims_env: ClaimsEnv) -> None:
    claim = synthetic_claims(1, seed=7, now=NOW)[0].model_copy(
        update={"policy_number": "LEGACY/0001"}
    )
    events = await run_claim(claims_env, claim)
    decision = decision_of(events)
    assert events[-1].kind == "RUN_COMPLETED"
    assert decision.outcome == "INVESTIGATE" and "policy_coverage failed" in decision.reasons[0]
    assert "LEGACY/0001" not in "".join(e.model_dump_json() for e in events)


async def test_simulator_down_retries_once_then_investigates(
    claims_env: ClaimsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTREC_CLAIMS_URL", "http://127.0.0.1:9")  # nobody listens
    events = await run_claim(claims_env, synthetic_claims(1, seed=7, now=NOW)[0])
    results = [e for e in events if e.kind == "TOOL_RESULT"]
    assert [(r.tool, r.status, r.retryable) for r in results] == [
        ("policy_coverage", "error", True)
    ] * 2
    decision = decision_of(events)
    assert decision.outcome == "INVESTIGATE" and decision.confidence == 0.5
    assert "ToolHTTPError" in decision.reasons[0]


async def test_a_failed_run_ends_in_the_fallback(claims_env: ClaimsEnv) -> None:
    agent = CLAIMS_AGENT.agent().model_copy(update={"max_steps": 2})
    events = await run_claim(claims_env, synthetic_claims(1, seed=7, now=NOW)[0], agent)
    assert [e.kind for e in events[-2:]] == ["DECISION", "RUN_FAILED"]
    decision = decision_of(events)
    assert (decision.outcome, decision.confidence, decision.payout_amount) == (
        "INVESTIGATE",
        0.0,
        0.0,
    )
    assert decision.fraud_signals == [] and len(decision.reasons) == 1
    assert decision.reasons[0].startswith("sent to a claims investigator: step budget")


def test_claim_model_refuses_naive_times_and_extra_fields() -> None:
    good = synthetic_claims(1, seed=1, now=NOW)[0].model_dump()
    with pytest.raises(ValueError, match="timezone"):
        Claim.model_validate({**good, "submitted_at": datetime(2025, 1, 1)})
    with pytest.raises(ValueError, match="extra"):
        Claim.model_validate({**good, "note": "x"})
