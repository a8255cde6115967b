"""The claims tools through their toolset: the real policy number reaches the
simulator, the result the model sees carries only its token, and the fraud
screen is a pure function of its arguments."""

from __future__ import annotations

from flightrec.contracts.settings import Settings
from flightrec.tools.http import HttpClient
from flightrec_claims.simulator import claim_history, coverage
from flightrec_claims.tools import CLAIMS_TOOL_NAMES, build_claims_toolset

from claims_support import ClaimsEnv

REAL = "POL-000001"
TOKEN = "pii:k1:0123456789abcdef"
VAULT = {TOKEN: REAL}


def test_the_simulator_host_is_allowed_by_default() -> None:
    HttpClient(Settings()).check_url("http://127.0.0.1:18091/v1/policies/POL-000001")


async def test_policy_tools_get_the_real_number_and_return_the_token(
    claims_env: ClaimsEnv,
) -> None:
    toolset = build_claims_toolset(claims_env.settings, claims_env.http)
    assert sorted(toolset.allowed) == sorted(CLAIMS_TOOL_NAMES)
    expected = coverage(REAL)
    assert expected is not None
    outcome = await toolset.call(
        "policy_coverage", {"policy_number": TOKEN}, call_id="c1", pii_vault=VAULT
    )
    assert outcome.status == "ok" and outcome.result is not None
    # The simulator answered for the real number; the model sees the token.
    assert outcome.result == {**expected, "policy_number": TOKEN}
    history = await toolset.call(
        "claim_history", {"policy_number": TOKEN}, call_id="c2", pii_vault=VAULT
    )
    assert history.result == claim_history(REAL)
    assert REAL not in str(outcome) + str(history)


async def test_an_unknown_policy_is_a_terminal_error_without_the_number(
    claims_env: ClaimsEnv,
) -> None:
    unknown = next(f"POL-{n:06d}" for n in range(1000) if coverage(f"POL-{n:06d}") is None)
    toolset = build_claims_toolset(claims_env.settings, claims_env.http)
    outcome = await toolset.call(
        "policy_coverage", {"policy_number": TOKEN}, call_id="c1", pii_vault={TOKEN: unknown}
    )
    assert (outcome.status, outcome.error_type, outcome.retryable) == (
        "error",
        "ToolHTTPError",
        False,
    )
    assert "404" in str(outcome.error_message) and unknown not in str(outcome.error_message)


async def test_fraud_screen_scores_its_signals(claims_env: ClaimsEnv) -> None:
    toolset = build_claims_toolset(claims_env.settings, claims_env.http, allowed=["fraud_screen"])
    calm = await toolset.call(
        "fraud_screen",
        {
            "claim_type": "TRAVEL",
            "claimed_amount": 812.4,
            "prior_claims": 0,
            "description_length": 120,
        },
        call_id="c1",
    )
    assert calm.result == {"score": 0.05, "signals": []}
    alarming = await toolset.call(
        "fraud_screen",
        {
            "claim_type": "TRAVEL",
            "claimed_amount": 5000.0,
            "prior_claims": 3,
            "description_length": 8,
        },
        call_id="c2",
    )
    assert alarming.result is not None and alarming.result["score"] == 1.0
    assert len(alarming.result["signals"]) == 4
    refused = await toolset.call(
        "fraud_screen", {"claim_type": "BOAT", "claimed_amount": 1.0}, call_id="c3"
    )
    assert (refused.status, refused.error_type) == ("error", "ToolArgumentsError")
    not_allowed = await toolset.call("policy_coverage", {"policy_number": TOKEN}, call_id="c4")
    assert not_allowed.error_type == "ToolNotAllowedError"
