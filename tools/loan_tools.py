"""The reference loan tools and their toolset.

The tool contract (names and fields are fixed; the loan agent's allow-list is
exactly these four):

* ``policy_lookup`` {profile} -> the lending policy (:mod:`flightrec.tools.loan_policy`);
* ``credit_bureau_report`` {national_id} -> score and history, over HTTP from
  the bureau (``Settings.bureau_url`` + ``/v1/reports``). The model only sees a
  PII token for ``national_id``; the toolset swaps in the real value;
* ``verify_income`` {application_id, declared_annual_income, employment_status,
  employment_years} -> verification, over HTTP (``/v1/income``);
* ``affordability`` {amount, term_months, annual_income, monthly_debt_payments,
  annual_rate} -> amortised monthly payment, DTI and payment-to-income; pure.

Argument models forbid extra fields: a model that invents arguments gets a
``ToolArgumentsError`` instead of having them silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from flightrec.contracts.errors import ToolError
from flightrec.contracts.settings import Settings
from flightrec.tools.http import HttpClient
from flightrec.tools.loan_policy import PolicyName, PolicyProfile, get_policy
from flightrec.tools.spec import ToolSpec, tool
from flightrec.tools.toolset import Toolset

__all__ = [
    "LOAN_TOOL_NAMES",
    "AffordabilityArgs",
    "AffordabilityResult",
    "CreditReport",
    "CreditReportArgs",
    "IncomeVerification",
    "LoanToolContext",
    "PolicyLookupArgs",
    "VerifyIncomeArgs",
    "affordability",
    "amortized_payment",
    "build_loan_toolset",
    "credit_bureau_report",
    "loan_tool_specs",
    "policy_lookup",
    "verify_income",
]

LOAN_TOOL_NAMES: frozenset[str] = frozenset(
    {"policy_lookup", "credit_bureau_report", "verify_income", "affordability"}
)


@dataclass(frozen=True)
class LoanToolContext:
    """Shared resources of the loan tools: settings (bureau URL) and the HTTP client."""

    settings: Settings
    http: HttpClient


class _Args(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ------------------------------------------------------------------- policy


class PolicyLookupArgs(_Args):
    profile: PolicyName = Field(description='policy profile: "standard" or "strict"')


@tool(timeout_s=1.0)
async def policy_lookup(args: PolicyLookupArgs) -> PolicyProfile:
    """Lending policy thresholds for a profile: score floors, DTI caps, amount and
    term limits, age limits, currencies, the quoted annual rate."""
    return get_policy(args.profile)


# ------------------------------------------------------------------- bureau


class CreditReportArgs(_Args):
    national_id: str = Field(min_length=1, max_length=128, description="applicant's national id")


class CreditReport(_Result):
    credit_score: int = Field(ge=300, le=850)
    open_accounts: int = Field(ge=0)
    delinquencies_24m: int = Field(ge=0)
    bankruptcies: int = Field(ge=0)
    total_debt: float = Field(ge=0)
    bureau_ref: str


def _endpoint(ctx: LoanToolContext, path: str) -> str:
    return ctx.settings.bureau_url.rstrip("/") + path


@tool(retryable=True)
async def credit_bureau_report(args: CreditReportArgs, ctx: LoanToolContext) -> CreditReport:
    """Credit report from the bureau: score (300-850), open accounts, delinquencies
    in the last 24 months, bankruptcies, total debt, a bureau reference."""
    body = await ctx.http.post_json(
        _endpoint(ctx, "/v1/reports"), {"national_id": args.national_id}
    )
    return CreditReport.model_validate(body)


class VerifyIncomeArgs(_Args):
    application_id: str = Field(min_length=1, max_length=128)
    declared_annual_income: float = Field(ge=0)
    employment_status: str = Field(min_length=1, max_length=32)
    employment_years: float = Field(ge=0, le=80)


class IncomeVerification(_Result):
    verified: bool
    verified_annual_income: float = Field(ge=0)
    method: str
    confidence: float = Field(ge=0, le=1)


@tool(retryable=True)
async def verify_income(args: VerifyIncomeArgs, ctx: LoanToolContext) -> IncomeVerification:
    """Verify the declared annual income with the bureau (payroll, tax return,
    pension or bank statements): verified flag, verified income, confidence."""
    body = await ctx.http.post_json(_endpoint(ctx, "/v1/income"), args.model_dump(mode="json"))
    return IncomeVerification.model_validate(body)


# ------------------------------------------------------------ affordability


class AffordabilityArgs(_Args):
    amount: float = Field(gt=0, description="loan principal")
    term_months: int = Field(ge=1, le=600)
    annual_income: float = Field(gt=0)
    monthly_debt_payments: float = Field(ge=0, description="existing monthly debt payments")
    annual_rate: float = Field(ge=0, le=1, description="nominal annual rate, e.g. 0.079")


class AffordabilityResult(_Result):
    monthly_payment: float
    debt_to_income: float
    payment_to_income: float


def amortized_payment(amount: float, term_months: int, annual_rate: float) -> float:
    """Monthly payment of a fully amortising loan: ``A r / (1 - (1 + r)^-n)``,
    ``r`` the monthly rate; ``A / n`` at a zero rate. Not rounded."""
    if term_months < 1:
        raise ToolError("term must be at least one month", term_months=term_months)
    r = annual_rate / 12.0
    if r == 0:
        return amount / term_months
    return amount * r / (1.0 - (1.0 + r) ** -term_months)


@tool(timeout_s=1.0)
async def affordability(args: AffordabilityArgs) -> AffordabilityResult:
    """Monthly payment of the loan (amortised at the given rate), debt-to-income
    (existing debt plus the new payment over monthly income) and payment-to-income."""
    payment = amortized_payment(args.amount, args.term_months, args.annual_rate)
    monthly_income = args.annual_income / 12.0
    return AffordabilityResult(
        monthly_payment=round(payment, 2),
        debt_to_income=round((args.monthly_debt_payments + payment) / monthly_income, 4),
        payment_to_income=round(payment / monthly_income, 4),
    )


# ------------------------------------------------------------------ toolset


def loan_tool_specs() -> list[ToolSpec]:
    """The four loan tool specs."""
    return [policy_lookup, credit_bureau_report, verify_income, affordability]


def build_loan_toolset(
    settings: Settings, http: HttpClient, *, allowed: Iterable[str] | None = None
) -> Toolset:
    """The loan toolset; ``allowed`` is the agent's allow-list (default: all four).

    ``http`` is owned by the caller (``start()``/``close()`` with the worker),
    so many toolsets can share one connection pool.
    """
    return Toolset(
        loan_tool_specs(),
        allowed=allowed,
        context=LoanToolContext(settings=settings, http=http),
        default_timeout_s=settings.tool_timeout_s,
    )
