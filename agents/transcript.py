"""The conversation a model sees, built the same way live and in replay.

Layout (the request hash covers every byte, so it must be deterministic):

* system: the agent's instructions, then the allowed tools as JSON;
* user: the application as canonical JSON between two marker lines;
* assistant: one message per step, the step as canonical JSON;
* tool: one message per tool outcome, canonical JSON.

Canonical JSON never contains a raw line break (``\\n`` inside strings is
escaped), so free text in the application cannot forge the end marker: the data
block is exactly one line. Models read the blocks back with the ``read_*``
helpers here (``PolicyModel`` does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flightrec.agents.model import Message, Transcript
from flightrec.agents.steps import AgentStep, ThoughtStep
from flightrec.contracts.events import canonical_json
from flightrec.tools.base import ToolOutcome

__all__ = [
    "DATA_BEGIN",
    "DATA_END",
    "Evidence",
    "assistant_message",
    "read_input",
    "read_steps",
    "read_tool_results",
    "system_message",
    "tool_message",
    "user_message",
]

DATA_BEGIN = "-----BEGIN APPLICATION DATA-----"
DATA_END = "-----END APPLICATION DATA-----"


def system_message(instructions: str, tool_descriptions: Sequence[Mapping[str, Any]]) -> Message:
    """Instructions plus the tools the model may call (name, description, JSON schema)."""
    tools = canonical_json([dict(d) for d in tool_descriptions])
    content = (
        f"{instructions.strip()}\n\n"
        "Tools you may call (put the arguments, as a JSON object, in arguments_json):\n"
        f"{tools}"
    )
    return Message(role="system", content=content)


def user_message(business_key: str, input_view: Mapping[str, Any], subject_prompt: str) -> Message:
    """The input as data, delimited; never to be read as instructions.

    ``subject_prompt`` opens the message, ``{key}`` replaced by the business key
    (JSON-quoted: it comes from the input and could hold a line break)."""
    opening = subject_prompt.replace("{key}", canonical_json(business_key))
    content = f"{opening}\n{DATA_BEGIN}\n{canonical_json(dict(input_view))}\n{DATA_END}"
    return Message(role="user", content=content)


def assistant_message(step: AgentStep) -> Message:
    """The step the model proposed, as the model will see it next turn
    (:class:`~flightrec.contracts.errors.UnrecordableError` for a step that
    holds what no record can: NaN, infinity, text UTF-8 cannot encode)."""
    return Message(role="assistant", content=canonical_json(step.model_dump(mode="json")))


def tool_message(tool: str, call_id: str, outcome: ToolOutcome) -> Message:
    """A tool's result or typed error, as the model will see it."""
    body: dict[str, Any] = {"call_id": call_id, "tool": tool, "status": outcome.status}
    if outcome.status == "ok":
        body["result"] = outcome.result
    else:
        body["error_type"] = outcome.error_type
        body["error_message"] = outcome.error_message
        body["retryable"] = outcome.retryable
    return Message(role="tool", content=canonical_json(body))


def read_input(transcript: Transcript) -> dict[str, Any]:
    """The input data of the first user message ({} when there is none)."""
    for message in transcript:
        if message.role != "user":
            continue
        lines = message.content.split("\n")
        try:
            start = lines.index(DATA_BEGIN)
        except ValueError:
            continue
        if start + 2 < len(lines) and lines[start + 2] == DATA_END:
            value = json.loads(lines[start + 1])
            return value if isinstance(value, dict) else {}
    return {}


def read_tool_results(transcript: Transcript) -> list[dict[str, Any]]:
    """Every tool message, decoded, in order."""
    out: list[dict[str, Any]] = []
    for message in transcript:
        if message.role == "tool":
            value = json.loads(message.content)
            if isinstance(value, dict):
                out.append(value)
    return out


def read_steps(transcript: Transcript, output_type: type[AgentStep] = AgentStep) -> list[AgentStep]:
    """Every assistant step, decoded as ``output_type`` (the agent's step type,
    ``ModelRequest.output_type``), in order; messages that are not steps are skipped."""
    out: list[AgentStep] = []
    for message in transcript:
        if message.role == "assistant":
            try:
                out.append(output_type.model_validate_json(message.content))
            except ValueError:
                continue
    return out


@dataclass
class Evidence:
    """What a transcript says so far, as an offline model reads it: the input,
    how many thoughts the model wrote, each tool's last result and its errors.

    ``PolicyModel`` and the claims example's ``ClaimsRulesModel`` decide from it."""

    input: dict[str, Any]
    thoughts: int
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def read(cls, transcript: Transcript, output_type: type[AgentStep] = AgentStep) -> Evidence:
        """The evidence in ``transcript`` (steps decoded as ``output_type``)."""
        evidence = cls(
            input=read_input(transcript),
            thoughts=sum(
                1 for s in read_steps(transcript, output_type) if isinstance(s.step, ThoughtStep)
            ),
        )
        for message in read_tool_results(transcript):
            tool = str(message.get("tool"))
            if message.get("status") == "ok" and isinstance(message.get("result"), dict):
                evidence.results[tool] = message["result"]
            else:
                evidence.errors.setdefault(tool, []).append(message)
        return evidence

    def failure(self, tool: str, max_tries: int = 2) -> str | None:
        """Why ``tool`` can no longer be used, or None while it may be (re)tried: it
        has not failed, it answered since, or its last error is retryable and it
        was tried fewer than ``max_tries`` times."""
        errors = self.errors.get(tool, [])
        if not errors or tool in self.results:
            return None
        last = errors[-1]
        if last.get("retryable") and len(errors) < max_tries:
            return None
        return f"{tool} failed ({last.get('error_type')}: {last.get('error_message')})"
