"""``Agent``: inert, frozen configuration of an agent. No behaviour.

The runner (:func:`flightrec.agents.runner.run_agent`) gives an ``Agent`` life; the same
``Agent`` value drives live runs and replays, so everything that shapes what the
model is asked (instructions, output type, tools, budgets) lives here and is
recorded in ``RUN_STARTED``. A variant for re-evaluation is
``agent.model_copy(update={...})``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightrec.agents.steps import AgentStep

__all__ = ["Agent"]


class Agent(BaseModel):
    """What an agent is: identity, prompt, output type, allow-list and budgets.

    ``tools`` is the allow-list: the runner never runs a tool outside it, and the
    toolset refuses (and records) any proposal of another tool.
    ``max_tool_refusals`` is how many refused tool proposals (unknown or not
    allowed) a run tolerates before it ends with REFER + ``RUN_FAILED``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    prompt_version: str = Field(min_length=1)
    instructions: str
    tools: tuple[str, ...]
    output_type: type[AgentStep] = AgentStep
    model_profile: str = "standard"
    max_steps: int = Field(default=12, ge=1)
    max_tokens: int = Field(default=20_000, ge=1)
    deadline_s: float = Field(default=60.0, gt=0)
    max_tool_refusals: int = Field(default=2, ge=1)

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, tools: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(tools)) != len(tools):
            raise ValueError("the tool allow-list names a tool twice")
        return tools
