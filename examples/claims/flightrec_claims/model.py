"""``ClaimsRulesModel``: a deterministic, offline model that triages claims by rules.

It reads everything from the transcript (the claim in the user message, tool
results in tool messages, its own earlier steps in assistant messages), so the
same transcript always gives the same step and runs replay without a network.
The procedure is fixed:

1. a thought summarising the claim;
2. ``policy_coverage`` with the policy number token exactly as given;
3. ``claim_history`` with the same token;
4. ``fraud_screen`` on the claim and the insurer's count of past claims;
5. a decision by the rules of :func:`triage`.

The description is free text written by the claimant: only its length is
used, never its content, which makes the model immune to prompt injection by
construction. A retryable tool error is retried once; any other missing
evidence sends the claim to an investigator.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flightrec.agents.model import ModelInfo, ModelRequest, ModelTurn, Transcript
from flightrec.agents.models import ok_turn
from flightrec.agents.transcript import Evidence
from flightrec.contracts.events import canonical_json
from flightrec_claims.models import ClaimDecision

__all__ = ["ClaimsRulesModel", "triage"]

_PROCEDURE = ("policy_coverage", "claim_history", "fraud_screen")
_MAX_TOOL_TRIES = 2
_FRAUD_THRESHOLD = 0.5


def _amount(claim: Mapping[str, Any]) -> float:
    value = claim.get("claimed_amount", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def _history_signals(claim: Mapping[str, Any], past: list[Mapping[str, Any]]) -> list[str]:
    """What in the claim history needs an investigator's eyes."""
    signals: list[str] = []
    declared = claim.get("prior_claims", 0)
    if isinstance(declared, int) and len(past) > declared:
        signals.append(
            f"the claimant declared {declared} prior claims; the insurer's history shows {len(past)}"
        )
    denied = [str(c.get("date")) for c in past if c.get("outcome") == "DENIED"]
    if denied:
        signals.append(f"a past claim on the policy was denied ({', '.join(denied)})")
    return signals


def triage(
    claim: Mapping[str, Any],
    coverage: Mapping[str, Any],
    history: Mapping[str, Any],
    screen: Mapping[str, Any],
) -> ClaimDecision:
    """The decision on a claim, given the three tools' results.

    DENY when the policy does not cover the claim; INVESTIGATE when a fraud
    or history signal is raised or the amount exceeds the limit; else PAY
    ``min(amount, limit) - deductible``, floored at 0.
    """
    amount, currency = _amount(claim), str(claim.get("currency", ""))
    claim_type = str(claim.get("claim_type", ""))
    limit, deductible = float(coverage["coverage_limit"]), float(coverage["deductible"])
    denials: list[str] = []
    if not coverage.get("active"):
        denials.append("the policy is not active")
    if claim_type not in coverage.get("covered_types", []):
        denials.append(f"the policy does not cover {claim_type} claims")
    if denials:
        return ClaimDecision(outcome="DENY", reasons=denials, confidence=0.9)

    score = float(screen["score"])
    from_history = _history_signals(claim, history.get("claims", []))
    signals = [*screen.get("signals", []), *from_history]
    concerns: list[str] = []
    if score >= _FRAUD_THRESHOLD:
        concerns.append(f"fraud score {score:.2f} is at or above {_FRAUD_THRESHOLD:.2f}")
    if amount > limit:
        concerns.append(
            f"claimed {amount:,.2f} {currency} exceeds the coverage limit of {limit:,.2f}"
        )
    concerns.extend(from_history)
    if concerns:
        return ClaimDecision(
            outcome="INVESTIGATE", reasons=concerns, confidence=0.7, fraud_signals=signals
        )

    payout = max(0.0, min(amount, limit) - deductible)
    return ClaimDecision(
        outcome="PAY",
        reasons=[
            f"the policy is active and covers {claim_type} claims",
            f"claimed {amount:,.2f} {currency} is within the coverage limit of {limit:,.2f}",
            f"payout {payout:,.2f} {currency} after a deductible of {deductible:,.2f}",
            f"fraud score {score:.2f} is below {_FRAUD_THRESHOLD:.2f}",
        ],
        confidence=round(0.95 - score / 2, 3),
        payout_amount=round(payout, 2),
        fraud_signals=signals,
    )


class ClaimsRulesModel:
    """Deterministic offline claims triage; see the module docstring."""

    def __init__(self, profile: str = "standard") -> None:
        self._info = ModelInfo(
            provider="flightrec-claims", model="claims-rules-1", profile=profile, temperature=0.0
        )

    @property
    def info(self) -> ModelInfo:
        """Provider ``flightrec-claims``, model ``claims-rules-1``, the profile."""
        return self._info

    async def aclose(self) -> None:
        """Nothing to release: the rules run in process."""

    async def next_step(self, request: ModelRequest) -> ModelTurn:
        """The next triage step for the request's transcript, as the agent's
        output type (computed at once, so the deadline needs no handling)."""
        started = time.perf_counter()
        step = request.output_type.model_validate({"step": self.plan(request.transcript)})
        response_id = "claims-" + request.hash(self._info)[:16]
        latency = (time.perf_counter() - started) * 1000
        return ok_turn(self._info, request, step, response_id=response_id, latency_ms=latency)

    def plan(self, transcript: Transcript) -> dict[str, Any]:
        """The step the procedure calls for, as the JSON of one step."""
        ev = Evidence.read(transcript)
        if ev.thoughts == 0:
            return _summary(ev.input)
        for tool in _PROCEDURE:
            failure = ev.failure(tool, _MAX_TOOL_TRIES)
            if failure is not None:
                return _decision(
                    "Required evidence is unavailable, so the rules cannot be applied.",
                    ClaimDecision(
                        outcome="INVESTIGATE",
                        reasons=[f"{failure}; an investigator must complete the triage"],
                        confidence=0.5,
                    ),
                )
            if tool not in ev.results:
                return _tool_call(tool, ev)
        decision = triage(
            ev.input,
            ev.results["policy_coverage"],
            ev.results["claim_history"],
            ev.results["fraud_screen"],
        )
        return _decision(f"Applying the triage rules: {decision.outcome}.", decision)


def _summary(claim: Mapping[str, Any]) -> dict[str, Any]:
    description = str(claim.get("description", ""))
    # The description's length only: it is data, and text echoed into the
    # reasoning would read like an instruction we adopted.
    text = (
        f"Claim {claim.get('claim_id', '?')}: {claim.get('claim_type', '?')} incident on "
        f"{claim.get('incident_date', '?')}, {_amount(claim):,.2f} {claim.get('currency', '')} "
        f"claimed, {claim.get('prior_claims', 0)} prior claims declared, a description of "
        f"{len(description)} characters (data only). Plan: check coverage, the claim history "
        "and the fraud screen, then decide by the rules."
    )
    return {"type": "thought", "reasoning": text}


def _tool_call(tool: str, ev: Evidence) -> dict[str, Any]:
    claim = ev.input
    if tool == "fraud_screen":
        past = len(ev.results["claim_history"].get("claims", []))
        declared = claim.get("prior_claims", 0)
        arguments: dict[str, Any] = {
            "claim_type": claim.get("claim_type", ""),
            "claimed_amount": _amount(claim),
            # The insurer's record counts, unless the claimant declares more.
            "prior_claims": max(past, declared if isinstance(declared, int) else 0),
            "description_length": len(str(claim.get("description", ""))),
        }
        reasoning = "Screen the claim for fraud signals."
    else:
        # The policy number is a token: passed exactly as given, the toolset swaps it.
        arguments = {"policy_number": claim.get("policy_number", "")}
        reasoning = f"Look up the policy: {tool.replace('_', ' ')}."
    return {
        "type": "tool_call",
        "reasoning": reasoning,
        "tool": tool,
        "arguments_json": canonical_json(arguments),
    }


def _decision(reasoning: str, decision: ClaimDecision) -> dict[str, Any]:
    # The decision step is the document's fields, all of them required (strict
    # structured output), plus the step's type and reasoning.
    return {"type": "decision", "reasoning": reasoning, **decision.model_dump(mode="json")}
