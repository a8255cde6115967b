"""A small non-loan agent definition for the definition and registry tests.

A module of its own (not a test module) so that ``module:attribute``
references (``refund_agent_support:REFUND_AGENT``) name it the way a team
names its agent; pytest puts ``tests/unit`` on ``sys.path``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from flightrec.agents.definition import AgentDefinition, AgentTopics
from flightrec.agents.model import ClosableModel
from flightrec.contracts.model_schema import PII
from flightrec.contracts.settings import Settings
from flightrec.testing.models import ScriptedModel
from flightrec.tools.http import HttpClient
from flightrec.tools.spec import tool
from flightrec.tools.toolset import Toolset

REFUND_AGENT_NAME = "refund-desk"
REFUND_TOOLS = ("order_lookup",)
REFUND_PROMPT = "You decide refunds ({profile} desk): REFUND or REJECT."


class Item(BaseModel):
    """One line of an order."""

    sku: str
    quantity: int = Field(ge=1)


class RefundRequest(BaseModel):
    """A customer's refund request."""

    request_id: str
    customer_name: Annotated[str, PII]
    email: Annotated[str, PII] | None = None
    amount: float
    items: list[Item] = Field(default_factory=list)


class RefundDecision(BaseModel):
    """What the refund desk decides."""

    outcome: Literal["REFUND", "REJECT"]
    reasons: list[str]
    confidence: float
    items: list[Item] = Field(default_factory=list, description="the lines refunded")
    note: str = ""


class OrderArgs(BaseModel):
    order_id: str


class OrderResult(BaseModel):
    status: str


@tool
async def order_lookup(args: OrderArgs) -> OrderResult:
    """The status of an order."""
    return OrderResult(status="delivered")


def refund_toolset(
    settings: Settings, http: HttpClient, *, allowed: Any = None
) -> Toolset:  # the ToolsetFactory signature
    return Toolset([order_lookup], allowed=allowed)


class OfflineRefundModel(ScriptedModel):
    """A model with nothing scripted: the definition only needs one to exist."""

    async def aclose(self) -> None:
        return None


def offline_model(settings: Settings) -> ClosableModel:
    return OfflineRefundModel([], profile=settings.model_profile)


def refund_kwargs() -> dict[str, Any]:
    """The arguments of a valid refund definition (tests change one at a time)."""
    return {
        "name": REFUND_AGENT_NAME,
        "version": "0.3.0",
        "description": "Decides refund requests: REFUND or REJECT.",
        "input_model": RefundRequest,
        "decision_model": RefundDecision,
        "key_field": "request_id",
        "outcomes": ("REFUND", "REJECT"),
        "fallback_outcome": "REJECT",
        "fallback_reason": "left for the refunds team",
        "prompts": {"v1": REFUND_PROMPT},
        "tools": REFUND_TOOLS,
        "toolset": refund_toolset,
        "offline_model": offline_model,
        "topics": AgentTopics(input="refund.requests", decisions="refund.decisions"),
    }


def refund_definition(**changes: Any) -> AgentDefinition:
    """A refund definition with ``changes`` applied to the valid arguments."""
    return AgentDefinition(**{**refund_kwargs(), **changes})


REFUND_AGENT = refund_definition()


def make_refund_agent() -> AgentDefinition:
    """A zero-argument factory, as a ``module:attribute`` reference may name."""
    return refund_definition()


NOT_A_DEFINITION = "refund-desk"


def broken_refund_agent() -> AgentDefinition:
    """A factory whose definition is refused (its fallback is not an outcome)."""
    return refund_definition(fallback_outcome="ESCALATE")
