"""The claims tools and their toolset.

* ``policy_coverage`` {policy_number} -> whether the policy is active, its
  limit, deductible and covered claim types, over HTTP from the policy
  simulator (``GET /v1/policies/{policy_number}``);
* ``claim_history`` {policy_number} -> the past claims on the policy, over
  HTTP (``GET /v1/policies/{policy_number}/claims``);
* ``fraud_screen`` {claim_type, claimed_amount, prior_claims,
  description_length} -> a fraud score and the signals behind it; pure.

``policy_number`` is PII: the model only ever sees its token, and the toolset
swaps the real number in before the tool runs and back out of the result. The
simulator's URL is ``FLIGHTREC_CLAIMS_URL`` (default
:data:`DEFAULT_CLAIMS_URL`); its host must be on ``Settings.http_allowed_hosts``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from flightrec.contracts.settings import Settings
from flightrec.tools.http import HttpClient
from flightrec.tools.spec import tool
from flightrec.tools.toolset import Toolset
from flightrec_claims.models import ClaimType

__all__ = [
    "CLAIMS_TOOL_NAMES",
    "CLAIMS_URL_ENV",
    "DEFAULT_CLAIMS_URL",
    "ClaimHistory",
    "ClaimsToolContext",
    "Coverage",
    "FraudScreen",
    "FraudScreenArgs",
    "PastClaim",
    "PolicyArgs",
    "build_claims_toolset",
    "claim_history",
    "fraud_screen",
    "policy_coverage",
]

CLAIMS_URL_ENV = "FLIGHTREC_CLAIMS_URL"
DEFAULT_CLAIMS_URL = "http://127.0.0.1:18091"
CLAIMS_TOOL_NAMES: tuple[str, ...] = ("policy_coverage", "claim_history", "fraud_screen")


@dataclass(frozen=True)
class ClaimsToolContext:
    """What the HTTP tools share: the simulator's base URL and the worker's HTTP client."""

    url: str
    http: HttpClient

    def policy_url(self, policy_number: str, suffix: str = "") -> str:
        """The URL of one policy's resource (the number quoted as one path segment)."""
        return f"{self.url.rstrip('/')}/v1/policies/{quote(policy_number, safe='')}{suffix}"


# Arguments forbid extra fields: a model that invents arguments gets a
# ToolArgumentsError instead of having them silently dropped.
class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PolicyArgs(_Args):
    policy_number: str = Field(
        min_length=1, max_length=128, description="the policy number exactly as in the claim"
    )


class Coverage(_Result):
    policy_number: str
    active: bool
    coverage_limit: float = Field(ge=0)
    deductible: float = Field(ge=0)
    covered_types: list[ClaimType]


@tool(retryable=True)
async def policy_coverage(args: PolicyArgs, ctx: ClaimsToolContext) -> Coverage:
    """The policy's coverage: whether it is active, the coverage limit, the
    deductible and the claim types it covers."""
    body = await ctx.http.get_json(ctx.policy_url(args.policy_number))
    return Coverage.model_validate(body)


class PastClaim(_Result):
    date: str = Field(description="ISO date the claim was made")
    claim_type: ClaimType
    amount: float = Field(ge=0)
    outcome: Literal["PAID", "DENIED", "WITHDRAWN"]


class ClaimHistory(_Result):
    claims: list[PastClaim]


@tool(retryable=True)
async def claim_history(args: PolicyArgs, ctx: ClaimsToolContext) -> ClaimHistory:
    """Past claims on the policy, oldest first: date, type, amount and outcome."""
    body = await ctx.http.get_json(ctx.policy_url(args.policy_number, "/claims"))
    return ClaimHistory.model_validate(body)


class FraudScreenArgs(_Args):
    claim_type: ClaimType
    claimed_amount: float = Field(gt=0)
    prior_claims: int = Field(ge=0, description="past claims on the policy")
    description_length: int = Field(ge=0, description="characters in the claimant's description")


class FraudScreen(_Result):
    score: float = Field(ge=0, le=1, description="0 (no concern) to 1; 0.5 and above: investigate")
    signals: list[str]


# Amounts above which a claim of each type is unusual enough to be a signal.
_HIGH_AMOUNT: Mapping[str, float] = {
    "AUTO": 15_000.0,
    "HOME": 40_000.0,
    "TRAVEL": 3_000.0,
    "HEALTH": 20_000.0,
}


@tool(timeout_s=1.0)
async def fraud_screen(args: FraudScreenArgs) -> FraudScreen:
    """Fraud score (0-1) and its signals, from the claim's type, amount, the
    number of prior claims and the length of the description."""
    weighted: list[tuple[float, str]] = []
    if args.claimed_amount > _HIGH_AMOUNT[args.claim_type]:
        weighted.append(
            (0.35, f"amount {args.claimed_amount:,.2f} is high for a {args.claim_type} claim")
        )
    if args.prior_claims >= 3:
        weighted.append((0.3, f"{args.prior_claims} prior claims on the policy"))
    if args.description_length < 40:
        weighted.append((0.2, "the description is too short to support the claim"))
    if args.claimed_amount >= 1_000 and args.claimed_amount % 500 == 0:
        weighted.append((0.1, f"round claimed amount {args.claimed_amount:,.0f}"))
    score = min(1.0, 0.05 + sum(weight for weight, _ in weighted))
    return FraudScreen(score=round(score, 3), signals=[signal for _, signal in weighted])


def build_claims_toolset(
    settings: Settings, http: HttpClient, *, allowed: Iterable[str] | None = None
) -> Toolset:
    """The claims toolset; ``allowed`` is the agent's allow-list (default: all three).

    ``http`` is owned by the caller, so many toolsets share one connection pool.
    """
    url = os.environ.get(CLAIMS_URL_ENV) or DEFAULT_CLAIMS_URL
    return Toolset(
        [policy_coverage, claim_history, fraud_screen],
        allowed=allowed,
        context=ClaimsToolContext(url=url, http=http),
        default_timeout_s=settings.tool_timeout_s,
    )
