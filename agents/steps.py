"""The structured output a model produces at each step of a run.

A model proposes exactly one step per call: a thought, a tool call or a decision.
These models are sent to OpenAI-compatible endpoints as strict JSON schemas, so
every field is required and has no default (strict structured outputs demand it).
Tool arguments travel as JSON text for the same reason: strict schemas cannot
describe an open object.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from flightrec.contracts.events import DecisionOutcome

__all__ = ["AgentStep", "DecisionStep", "Step", "ThoughtStep", "ToolCallStep"]


class _Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ThoughtStep(_Step):
    """Reason about the case; no side effect."""

    type: Literal["thought"]
    reasoning: str


class ToolCallStep(_Step):
    """Call one allowed tool with JSON arguments."""

    type: Literal["tool_call"]
    reasoning: str
    tool: str
    arguments_json: str


class DecisionStep(_Step):
    """Decide the case; ends the run."""

    type: Literal["decision"]
    reasoning: str
    outcome: DecisionOutcome
    reasons: list[str]
    conditions: list[str]
    confidence: float


Step = Annotated[ThoughtStep | ToolCallStep | DecisionStep, Field(discriminator="type")]


class AgentStep(_Step):
    """The output type of one model call: exactly one step."""

    step: Step
