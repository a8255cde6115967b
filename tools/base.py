"""What the runner needs from a toolset, so live tools and replay's recorded
tools are interchangeable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from flightrec.contracts.failures import ErrorType

__all__ = ["ToolExecutor", "ToolOutcome"]


class ToolOutcome(BaseModel):
    """A tool call's result or its typed error. Errors are outcomes, not exceptions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["ok", "error"]
    result: dict[str, Any] | None = None
    error_type: ErrorType | None = None
    error_message: str | None = None
    retryable: bool = False
    latency_ms: float = Field(default=0.0, ge=0)


@runtime_checkable
class ToolExecutor(Protocol):
    """Calls tools by name. ``pii_vault`` maps PII tokens seen by the model to
    the real values the tool must receive."""

    @property
    def allowed(self) -> frozenset[str]: ...

    def describe(self) -> list[dict[str, Any]]:
        """Name, description and JSON schema of each allowed tool's arguments."""
        ...

    async def call(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        call_id: str,
        pii_vault: Mapping[str, str] | None = None,
    ) -> ToolOutcome: ...
