"""The structured output a model produces at each step of a run.

A model proposes exactly one step per call: a thought, a tool call or a decision.
These models are sent to OpenAI-compatible endpoints as strict JSON schemas, so
every field is required and has no default (strict structured outputs demand it).
Tool arguments travel as JSON text for the same reason: strict schemas cannot
describe an open object.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, create_model

from flightrec.contracts.events import DecisionOutcome

__all__ = [
    "DECISION_STEP_FIELDS",
    "AgentStep",
    "DecisionDocument",
    "DecisionStep",
    "Step",
    "ThoughtStep",
    "ToolCallStep",
    "decision_document",
    "output_type_for",
]

DECISION_STEP_FIELDS = frozenset({"type", "reasoning"})
"""The fields of a decision step that are not part of the decision document."""


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


class DecisionDocument(BaseModel):
    """The decision document of the reference decision step (:class:`DecisionStep`
    without ``type`` and ``reasoning``): what the loan agent decides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: DecisionOutcome
    reasons: list[str]
    conditions: list[str] = Field(default_factory=list)
    confidence: float


Step = Annotated[ThoughtStep | ToolCallStep | DecisionStep, Field(discriminator="type")]


class AgentStep(_Step):
    """The output type of one model call: exactly one step."""

    step: Step


def decision_document(step: BaseModel) -> dict[str, Any]:
    """The decision document a decision step carries: every field but ``type`` and ``reasoning``."""
    return step.model_dump(mode="json", exclude=set(DECISION_STEP_FIELDS))


def output_type_for(decision_model: type[BaseModel], *, name: str) -> type[AgentStep]:
    """The structured output type of an agent whose decisions are ``decision_model``.

    Its decision step is the document's fields plus ``type`` and ``reasoning``,
    flat, as :class:`DecisionStep` is for the loan agent's document: a model
    sees one shape whatever the agent, and a strict JSON schema (every field
    required, no extra) still describes it. ``name`` prefixes the generated
    class names, which the schema sent to the model shows.
    """
    fields: dict[str, Any] = {
        "type": (Literal["decision"], ...),
        "reasoning": (str, ...),
    }
    for field_name, info in decision_model.model_fields.items():
        fields[field_name] = (info.annotation, Field(description=info.description))
    decision_step = create_model(  # type: ignore[call-overload]
        f"{name}DecisionStep",
        __base__=_Step,
        __doc__="Decide the case; ends the run.",
        **fields,
    )
    step_union = Annotated[
        ThoughtStep | ToolCallStep | decision_step,  # type: ignore[valid-type]
        Field(discriminator="type"),
    ]
    output = create_model(
        f"{name}AgentStep",
        __base__=AgentStep,
        __doc__="The output type of one model call: exactly one step.",
        step=(step_union, ...),
    )
    return cast(type[AgentStep], output)
