"""``PolicyModel``: a deterministic, offline model that underwrites by the loan policy.

It reads everything from the transcript (the application in the user message,
tool results in tool messages, its own earlier steps in assistant messages), so
the same transcript always gives the same step: runs are reproducible and
replayable without any network. It reasons in the steps a human underwriter
would take:

1. a thought summarising the application;
2. ``policy_lookup`` for its profile; hard eligibility knock-outs (amount, term,
   currency, age) decline without pulling a credit report;
3. ``credit_bureau_report`` with the national id token exactly as given;
4. ``verify_income``;
5. ``affordability`` at the policy's ``annual_rate``;
6. a thought weighing the evidence;
7. a decision with concrete reasons and conditions.

Free-text fields (``purpose``, ``notes``) are never interpreted: no branch of
this model depends on their content, which is what makes it immune to prompt
injection by construction. A retryable tool error is retried once; any other
missing evidence refers the case to a human.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from flightrec.agents.model import ModelInfo, ModelRequest, ModelTurn, Transcript
from flightrec.agents.models.base import StepLike, ok_turn
from flightrec.agents.steps import DecisionStep, ThoughtStep, ToolCallStep
from flightrec.agents.transcript import Evidence
from flightrec.contracts.events import DecisionOutcome, canonical_json

__all__ = ["PolicyModel", "eligibility", "underwrite"]

_MAX_TOOL_TRIES = 2


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _num(app: Mapping[str, Any], key: str) -> float:
    value = app.get(key, 0)
    return float(value) if isinstance(value, int | float) else 0.0


def _summary(app: Mapping[str, Any]) -> ThoughtStep:
    currency = str(app.get("currency", ""))
    notes = str(app.get("notes", ""))
    text = (
        f"Application {app.get('application_id', '?')}: {_money(_num(app, 'amount'), currency)} "
        f"over {int(_num(app, 'term_months'))} months for {str(app.get('purpose', '')) or 'an unstated purpose'}. "
        f"Applicant aged {int(_num(app, 'applicant_age'))}, {str(app.get('employment_status', '?')).lower()} "
        f"for {_num(app, 'employment_years'):g} years, declared income "
        f"{_money(_num(app, 'annual_income'), currency)} a year, existing debt payments "
        f"{_money(_num(app, 'monthly_debt_payments'), currency)} a month. "
        "Plan: check the lending policy, the credit report, the income and affordability."
    )
    if notes.strip():
        # Say that notes exist without repeating them: they are data, and an
        # instruction echoed into the reasoning would read like one we adopted.
        text += f" The applicant's free-text notes ({len(notes)} characters) are data only and do not change the assessment."
    return ThoughtStep(type="thought", reasoning=text)


def _call(tool: str, reasoning: str, arguments: Mapping[str, Any]) -> ToolCallStep:
    return ToolCallStep(
        type="tool_call",
        reasoning=reasoning,
        tool=tool,
        arguments_json=canonical_json(dict(arguments)),
    )


def eligibility(app: Mapping[str, Any], policy: Mapping[str, Any]) -> list[str]:
    """The policy's hard knock-outs of application ``app``: those that need no bureau data."""
    out: list[str] = []
    amount, term = _num(app, "amount"), int(_num(app, "term_months"))
    age, currency = int(_num(app, "applicant_age")), str(app.get("currency", ""))
    if not policy["min_amount"] <= amount <= policy["max_amount"]:
        out.append(
            f"amount {amount:,.2f} is outside the policy range "
            f"{policy['min_amount']:,.0f}-{policy['max_amount']:,.0f}"
        )
    if not policy["min_term_months"] <= term <= policy["max_term_months"]:
        out.append(
            f"term of {term} months is outside the policy range "
            f"{policy['min_term_months']}-{policy['max_term_months']} months"
        )
    if currency not in policy["allowed_currencies"]:
        out.append(f"currency {currency} is not lent under the {policy['profile']} policy")
    if age < policy["min_age"]:
        out.append(f"applicant age {age} is below the minimum of {policy['min_age']}")
    elif age + term / 12 > policy["max_age_at_maturity"]:
        out.append(
            f"applicant would be {age + term / 12:.1f} at maturity, above the maximum of "
            f"{policy['max_age_at_maturity']}"
        )
    return out


def underwrite(
    app: Mapping[str, Any],
    policy: Mapping[str, Any],
    bureau: Mapping[str, Any],
    income: Mapping[str, Any],
    afford: Mapping[str, Any],
) -> tuple[DecisionOutcome, list[str], list[str], float]:
    """The policy's verdict: (outcome, reasons, conditions, confidence).

    Declines win over referrals; referrals over approval.
    """
    declines = eligibility(app, policy)
    refers: list[str] = []
    score = int(bureau["credit_score"])
    dti, pti = float(afford["debt_to_income"]), float(afford["payment_to_income"])
    if score < policy["min_credit_score"]:
        declines.append(
            f"credit score {score} is below the minimum of {policy['min_credit_score']}"
        )
    elif score < policy["refer_credit_score"]:
        refers.append(
            f"credit score {score} is in the review band "
            f"{policy['min_credit_score']}-{policy['refer_credit_score'] - 1}"
        )
    if dti > policy["max_dti"]:
        declines.append(f"debt-to-income {dti:.1%} exceeds the maximum of {policy['max_dti']:.0%}")
    elif dti > policy["refer_dti"]:
        refers.append(
            f"debt-to-income {dti:.1%} is above the review threshold of {policy['refer_dti']:.0%}"
        )
    if pti > policy["max_payment_to_income"]:
        declines.append(
            f"the new payment takes {pti:.1%} of monthly income, above the maximum of "
            f"{policy['max_payment_to_income']:.0%}"
        )
    if policy["require_income_verification"] and not income.get("verified", False):
        refers.append(
            f"declared income could not be verified ({income.get('method', 'unknown method')})"
        )
    if int(bureau.get("bankruptcies", 0)) > 0:
        # Not a policy knock-out, but a bankruptcy on file always gets human eyes.
        refers.append(f"{int(bureau['bankruptcies'])} bankruptcy on the credit file")
    if declines:
        return "DECLINE", declines, [], 0.95 if len(declines) > 1 else 0.9
    if refers:
        return "REFER", refers, ["manual underwriting review required before any offer"], 0.6
    currency = str(app.get("currency", ""))
    margin = min(1.0, (score - policy["refer_credit_score"]) / 150 + (policy["refer_dti"] - dti))
    reasons = [
        f"credit score {score} meets the {policy['profile']} policy (review below {policy['refer_credit_score']})",
        f"debt-to-income {dti:.1%} within {policy['refer_dti']:.0%}; payment-to-income {pti:.1%}",
        f"income verified by {income.get('method', '?')}",
    ]
    conditions = [
        f"fixed annual rate {policy['annual_rate']:.2%} over {int(_num(app, 'term_months'))} months",
        f"monthly payment {_money(float(afford['monthly_payment']), currency)}",
        "signed credit agreement and direct debit mandate before disbursement",
    ]
    return "APPROVE", reasons, conditions, round(0.8 + 0.15 * max(0.0, margin), 3)


class PolicyModel:
    """Deterministic offline underwriter; see the module docstring."""

    def __init__(self, profile: Literal["standard", "strict"] | str = "standard") -> None:
        self._info = ModelInfo(
            provider="flightrec", model="policy-model-1", profile=profile, temperature=0.0
        )
        self._profile = profile

    @property
    def info(self) -> ModelInfo:
        """Provider ``flightrec``, model ``policy-model-1``, the policy profile."""
        return self._info

    async def aclose(self) -> None:
        """Nothing to release: the policy is computed in process."""

    async def next_step(self, request: ModelRequest) -> ModelTurn:
        """The next underwriting step for the request's transcript (computed at
        once, so the deadline needs no handling)."""
        started = time.perf_counter()
        step = self.plan(request.transcript)
        response_id = "policy-" + request.hash(self._info)[:16]
        latency = (time.perf_counter() - started) * 1000
        return ok_turn(self._info, request, step, response_id=response_id, latency_ms=latency)

    def plan(self, transcript: Transcript) -> StepLike:
        """The step the policy calls for, given what the transcript holds."""
        ev = Evidence.read(transcript)
        app = ev.input
        if ev.thoughts == 0:
            return _summary(app)
        missing = self._missing_evidence(ev)
        if missing is not None:
            return missing
        policy = ev.results["policy_lookup"]
        knockouts = eligibility(app, policy)
        needed = ["credit_bureau_report", "verify_income", "affordability"]
        if knockouts or all(t in ev.results for t in needed):
            if ev.thoughts < 2:
                return self._weigh(ev, knockouts)
            return self._decide(ev, knockouts)
        return self._next_tool(ev)

    def _missing_evidence(self, ev: Evidence) -> StepLike | None:
        for tool in ("policy_lookup", "credit_bureau_report", "verify_income", "affordability"):
            failure = ev.failure(tool, _MAX_TOOL_TRIES)
            if failure is not None:
                return DecisionStep(
                    type="decision",
                    reasoning="Required evidence is unavailable, so the policy cannot be applied.",
                    outcome="REFER",
                    reasons=[f"{failure}; a human underwriter must complete the assessment"],
                    conditions=["manual underwriting review required before any offer"],
                    confidence=0.5,
                )
        if "policy_lookup" not in ev.results:
            return _call(
                "policy_lookup",
                f"Look up the {self._profile} lending policy to know the thresholds.",
                {"profile": self._profile},
            )
        return None

    def _next_tool(self, ev: Evidence) -> ToolCallStep:
        app, policy = ev.input, ev.results["policy_lookup"]
        if "credit_bureau_report" not in ev.results:
            return _call(
                "credit_bureau_report",
                "Eligibility checks pass; pull the credit report for the applicant.",
                {"national_id": app.get("national_id", "")},
            )
        if "verify_income" not in ev.results:
            return _call(
                "verify_income",
                "Verify the declared income before relying on it.",
                {
                    "application_id": app.get("application_id", ""),
                    "declared_annual_income": _num(app, "annual_income"),
                    "employment_status": app.get("employment_status", ""),
                    "employment_years": _num(app, "employment_years"),
                },
            )
        income = ev.results["verify_income"]
        declared = _num(app, "annual_income")
        # Lend on the lower of declared and verified income: never more than proven.
        basis = (
            min(declared, float(income["verified_annual_income"]))
            if income.get("verified")
            else declared
        )
        return _call(
            "affordability",
            f"Compute affordability at the policy rate {policy['annual_rate']:.2%} on an income of {basis:,.2f}.",
            {
                "amount": _num(app, "amount"),
                "term_months": int(_num(app, "term_months")),
                "annual_income": basis,
                "monthly_debt_payments": _num(app, "monthly_debt_payments"),
                "annual_rate": float(policy["annual_rate"]),
            },
        )

    def _weigh(self, ev: Evidence, knockouts: list[str]) -> ThoughtStep:
        if knockouts:
            text = "The application fails hard eligibility rules: " + "; ".join(knockouts) + "."
            return ThoughtStep(
                type="thought", reasoning=text + " No credit check is needed to decide."
            )
        bureau, income, afford = (
            ev.results["credit_bureau_report"],
            ev.results["verify_income"],
            ev.results["affordability"],
        )
        text = (
            f"Evidence: credit score {bureau['credit_score']} with {bureau['delinquencies_24m']} "
            f"delinquencies in 24 months and {bureau['bankruptcies']} bankruptcies; income "
            f"{'verified' if income.get('verified') else 'NOT verified'} by {income.get('method')} "
            f"(confidence {float(income.get('confidence', 0)):.2f}); monthly payment "
            f"{float(afford['monthly_payment']):,.2f}, debt-to-income {float(afford['debt_to_income']):.1%}, "
            f"payment-to-income {float(afford['payment_to_income']):.1%}. Weigh these against the "
            f"{ev.results['policy_lookup']['profile']} policy thresholds."
        )
        return ThoughtStep(type="thought", reasoning=text)

    def _decide(self, ev: Evidence, knockouts: list[str]) -> DecisionStep:
        if knockouts:
            return DecisionStep(
                type="decision",
                reasoning="Declined on hard eligibility rules of the lending policy.",
                outcome="DECLINE",
                reasons=knockouts,
                conditions=[],
                confidence=0.97,
            )
        outcome, reasons, conditions, confidence = underwrite(
            ev.input,
            ev.results["policy_lookup"],
            ev.results["credit_bureau_report"],
            ev.results["verify_income"],
            ev.results["affordability"],
        )
        return DecisionStep(
            type="decision",
            reasoning=f"Applying the {ev.results['policy_lookup']['profile']} policy: {outcome}.",
            outcome=outcome,
            reasons=reasons,
            conditions=conditions,
            confidence=confidence,
        )
