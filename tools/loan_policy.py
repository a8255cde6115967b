"""Lending policy data, served by the ``policy_lookup`` tool.

How the thresholds read (the loan agent's decision rules rely on this):

* ``credit_score < min_credit_score`` -> decline;
  ``min_credit_score <= score < refer_credit_score`` -> refer to a human.
* ``debt_to_income`` (existing monthly debt + the new payment, over monthly
  income) ``> max_dti`` -> decline; ``refer_dti < dti <= max_dti`` -> refer.
* ``payment_to_income`` (the new payment over monthly income)
  ``> max_payment_to_income`` -> decline.
* ``amount`` outside ``[min_amount, max_amount]``, ``term_months`` outside
  ``[min_term_months, max_term_months]``, a currency not in
  ``allowed_currencies``, ``age < min_age`` or
  ``age + term_months / 12 > max_age_at_maturity`` -> decline.
* ``require_income_verification``: an income the bureau could not verify sends
  the application to a human.
* ``annual_rate`` is the rate quoted for the ``affordability`` computation.

``strict`` is the tighter profile (higher score floors, lower DTI caps, lower
maximum amount and term) used to re-evaluate past decisions under a new policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["POLICIES", "PolicyName", "PolicyProfile", "get_policy"]

PolicyName = Literal["standard", "strict"]


class PolicyProfile(BaseModel):
    """One lending policy; field names are the ``policy_lookup`` result contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str
    min_credit_score: int = Field(ge=300, le=850)
    refer_credit_score: int = Field(ge=300, le=850)
    max_dti: float = Field(gt=0, le=1)
    refer_dti: float = Field(gt=0, le=1)
    max_payment_to_income: float = Field(gt=0, le=1)
    min_amount: float = Field(gt=0)
    max_amount: float = Field(gt=0)
    min_term_months: int = Field(ge=1)
    max_term_months: int = Field(ge=1)
    min_age: int = Field(ge=18)
    max_age_at_maturity: int
    allowed_currencies: tuple[str, ...]
    annual_rate: float = Field(ge=0, le=1)
    require_income_verification: bool


_STANDARD = PolicyProfile(
    profile="standard",
    min_credit_score=580,
    refer_credit_score=660,
    max_dti=0.45,
    refer_dti=0.36,
    max_payment_to_income=0.25,
    min_amount=1000.0,
    max_amount=75000.0,
    min_term_months=12,
    max_term_months=84,
    min_age=18,
    max_age_at_maturity=75,
    allowed_currencies=("EUR", "GBP", "USD"),
    annual_rate=0.079,
    require_income_verification=True,
)

_STRICT = PolicyProfile(
    profile="strict",
    min_credit_score=640,
    refer_credit_score=720,
    max_dti=0.36,
    refer_dti=0.30,
    max_payment_to_income=0.18,
    min_amount=2000.0,
    max_amount=40000.0,
    min_term_months=12,
    max_term_months=60,
    min_age=21,
    max_age_at_maturity=70,
    allowed_currencies=("EUR", "GBP"),
    annual_rate=0.069,
    require_income_verification=True,
)

# Read-only view of frozen models: constant data, not mutable module state.
POLICIES: Mapping[str, PolicyProfile] = MappingProxyType(
    {_STANDARD.profile: _STANDARD, _STRICT.profile: _STRICT}
)


def get_policy(profile: str) -> PolicyProfile:
    """The named policy; ``KeyError`` for an unknown profile."""
    return POLICIES[profile]
