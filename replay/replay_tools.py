"""``ReplayToolset``: a ``ToolExecutor`` answering from recorded ``TOOL_RESULT`` events.

Two modes:

* ``strict`` (verify): calls must come in the recorded order with the recorded
  tool name and arguments; anything else raises
  :class:`~flightrec.contracts.errors.DivergenceError`. Nothing live is ever called.
* ``lenient`` (re-evaluation under a candidate model / prompt / agent): a call
  that matches a not-yet-used recorded call (same tool, same arguments) gets the
  recorded result; any other call goes to ``live`` when live tools are enabled,
  else it is answered with a ``ToolUnavailable`` error outcome
  (``FailureKind.TOOL_UNAVAILABLE``), so the
  candidate sees (and records) that the answer is unknown rather than invented.

Tool descriptions (``describe``) come from the agent's real toolset, because the
live run put them in the model's prompt: replay must describe the same tools to
ask the same question. Describing never calls a tool.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flightrec.contracts.errors import DivergenceError, UnrecordableError
from flightrec.contracts.events import CotEventBase, ToolCall, ToolResult, canonical_json
from flightrec.contracts.failures import FailureKind
from flightrec.tools.base import ToolExecutor, ToolOutcome

__all__ = ["RecordedToolCall", "ReplayToolset", "recorded_tool_calls"]


@dataclass(frozen=True)
class RecordedToolCall:
    """A recorded ``TOOL_CALL`` and the ``TOOL_RESULT`` that answered it (None if lost)."""

    call: ToolCall
    result: ToolResult | None

    @property
    def step(self) -> int:
        """Run-loop step of the call."""
        return self.call.step

    def outcome(self) -> ToolOutcome:
        """The recorded outcome as the live toolset returned it."""
        result = self.result
        if result is None:
            return ToolOutcome(
                status="error",
                error_type=FailureKind.TOOL_UNAVAILABLE,
                error_message="the recording holds no result for this call",
            )
        payload = json.loads(result.result_json) if result.result_json is not None else None
        return ToolOutcome(
            status=result.status,
            result=payload if isinstance(payload, dict) else None,
            error_type=result.error_type,
            error_message=result.error_message,
            retryable=result.retryable,
            latency_ms=result.latency_ms,
        )


def recorded_tool_calls(events: Sequence[CotEventBase]) -> list[RecordedToolCall]:
    """Pair each ``TOOL_CALL`` with its ``TOOL_RESULT`` (by ``call_id``), in call order."""
    results = {e.call_id: e for e in events if isinstance(e, ToolResult)}
    return [RecordedToolCall(e, results.get(e.call_id)) for e in events if isinstance(e, ToolCall)]


def _canonical_args(arguments: Mapping[str, Any]) -> str:
    return canonical_json(dict(arguments))


class ReplayToolset:
    """Recorded tool results served in place of the agent's tools."""

    def __init__(
        self,
        events: Sequence[CotEventBase],
        *,
        descriptions: Sequence[Mapping[str, Any]] = (),
        allowed: frozenset[str] | None = None,
        mode: Literal["strict", "lenient"] = "strict",
        live: ToolExecutor | None = None,
    ) -> None:
        if mode == "strict" and live is not None:
            raise ValueError("strict replay never calls live tools")
        self._calls = recorded_tool_calls(events)
        self._used = [False] * len(self._calls)
        self._next = 0
        self._descriptions = [dict(d) for d in descriptions]
        self._allowed = (
            allowed
            if allowed is not None
            else frozenset(str(d.get("name")) for d in self._descriptions)
        )
        self._mode = mode
        self._live = live
        steps = [e.step for e in events]
        self._after_last_step = (max(steps) + 1) if steps else 0
        self.live_calls = 0
        self.unavailable_calls = 0

    @property
    def allowed(self) -> frozenset[str]:
        """The tools the recorded agent was allowed to call."""
        return self._allowed

    def describe(self) -> list[dict[str, Any]]:
        """The descriptions the live toolset gave (no tool is called)."""
        return [dict(d) for d in self._descriptions]

    @property
    def remaining(self) -> int:
        """Recorded calls not (yet) asked for."""
        return self._used.count(False)

    async def call(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        call_id: str,
        pii_vault: Mapping[str, str] | None = None,
    ) -> ToolOutcome:
        """The recorded outcome of this call (see the module docstring for the modes)."""
        if self._mode == "strict":
            return self._strict(tool, arguments)
        return await self._lenient(tool, arguments, call_id=call_id, pii_vault=pii_vault)

    def _strict(self, tool: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        canonical = _canonical_args(arguments)
        actual = f"{tool}({canonical})"
        if self._next >= len(self._calls):
            raise DivergenceError(
                "replay called a tool the recording does not hold",
                step=self._after_last_step,
                expected="no further tool call (the recorded run made no more)",
                actual=actual,
            )
        index = self._next
        recorded = self._calls[index]
        expected = f"{recorded.call.tool}({recorded.call.arguments_json})"
        if tool != recorded.call.tool or canonical != _reformat(recorded.call.arguments_json):
            raise DivergenceError(
                "the tool call differs from the recording",
                step=recorded.step,
                expected=expected,
                actual=actual,
            )
        self._used[index] = True
        self._next += 1
        return recorded.outcome()

    async def _lenient(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        call_id: str,
        pii_vault: Mapping[str, str] | None,
    ) -> ToolOutcome:
        wanted = _canonical_args(arguments)
        for index, recorded in enumerate(self._calls):
            if (
                not self._used[index]
                and recorded.call.tool == tool
                and _reformat(recorded.call.arguments_json) == wanted
            ):
                self._used[index] = True
                return recorded.outcome()
        if self._live is not None:
            self.live_calls += 1
            return await self._live.call(tool, arguments, call_id=call_id, pii_vault=pii_vault)
        self.unavailable_calls += 1
        return ToolOutcome(
            status="error",
            error_type=FailureKind.TOOL_UNAVAILABLE,
            error_message=(
                f"{tool} was not called with these arguments in the recorded run "
                "and live tools are disabled"
            ),
        )


def _reformat(arguments_json: str) -> str:
    # Recorded arguments are canonical JSON already; re-canonicalise anyway so a
    # recording written by another encoder still compares equal.
    try:
        return canonical_json(json.loads(arguments_json))
    except UnrecordableError:
        # Recorded before canonical JSON refused NaN: no call made today can
        # match it, and the mismatch is a divergence, not a crash of the replay.
        return arguments_json
