"""The ``Model`` protocol: one structured step per call, with call metadata.

Implementations: ``OpenAIModel`` (any OpenAI-compatible endpoint),
``PolicyModel`` (deterministic, offline), ``ScriptedModel`` / ``FunctionModel``
(tests), and replay's ``ReplayModel``. A model returns every attempt it made
(retries included) so the runner can record each one as a ``MODEL_CALL``.

The run's time budget reaches the model as ``next_step(..., deadline_s=...)``:
the seconds left when the call is made. It is relative on purpose: the runner
judges time on ``RunContext`` (the monotonic clock live, the recorded time in
replay) and the model on its own clock, and "seconds left" means the same on
both. A model that makes requests bounds each one by it and starts no try or
backoff that would end past it; when it stops for that reason it returns the
attempts it made plus a last error attempt of kind ``BUDGET_EXCEEDED``,
so the record shows every try and why the turn ended. The deadline is not part
of the request: it is never in :func:`request_hash`, so recordings made before
it existed replay unchanged. The runner still wraps the call in a timeout a
little past the deadline, so a model that ignores it cannot hang a run.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from flightrec.agents.steps import AgentStep
from flightrec.contracts.events import canonical_json
from flightrec.contracts.failures import ErrorType

__all__ = [
    "Message",
    "Model",
    "ModelAttempt",
    "ModelInfo",
    "ModelTurn",
    "Transcript",
    "request_hash",
]


class Message(BaseModel):
    """One message of the conversation the model sees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant", "tool"]
    content: str


Transcript = Sequence[Message]


class ModelInfo(BaseModel):
    """Who answers: provider, model name, sampling settings, profile name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    model: str
    profile: str
    temperature: float | None = None
    seed: int | None = None


class ModelAttempt(BaseModel):
    """One request to the model: the successful one or a failed try."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_hash: str
    call_attempt: int = Field(ge=1)
    latency_ms: float = Field(ge=0)
    status: Literal["ok", "error"] = "ok"
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    error_type: ErrorType | None = None
    error_message: str | None = None
    output_json: str | None = None


class ModelTurn(BaseModel):
    """Result of ``next_step``: the parsed step (None when every attempt failed)
    and all attempts, in order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    output: AgentStep | None
    attempts: tuple[ModelAttempt, ...]

    @property
    def input_tokens(self) -> int:
        return sum(a.input_tokens for a in self.attempts)

    @property
    def output_tokens(self) -> int:
        return sum(a.output_tokens for a in self.attempts)


@runtime_checkable
class Model(Protocol):
    """Anything that proposes the next step of a run."""

    @property
    def info(self) -> ModelInfo: ...

    async def next_step(
        self,
        transcript: Transcript,
        output_type: type[AgentStep],
        *,
        deadline_s: float | None = None,
    ) -> ModelTurn:
        """Return the next step for ``transcript``. Never raises for model-side
        failures: they come back as attempts with ``status="error"`` and
        ``output=None``.

        ``deadline_s`` is the number of seconds the run has left (None: no
        deadline). A model that waits on anything honours it as the module
        docstring says; a model that answers at once may ignore it.
        """
        ...


def request_hash(info: ModelInfo, transcript: Transcript, output_type: type[BaseModel]) -> str:
    """SHA-256 of what is asked: model, sampling, messages and output schema.

    Replay compares it to the recorded hash to prove the same question was asked.
    """
    # The bytes are exactly canonical_json({"model", "temperature", "seed",
    # "messages": [m.model_dump() ...], "output_type"}), assembled from pieces:
    # each step re-sends the whole conversation, so every message's JSON is
    # cached instead of re-encoded at every step (sorted keys: messages, model,
    # output_type, seed, temperature).
    messages = ",".join(_message_json(m.role, m.content) for m in transcript)
    tail = _request_tail(info.model, output_type.__name__, info.seed, info.temperature)
    return hashlib.sha256(f'{{"messages":[{messages}]{tail}'.encode()).hexdigest()


@functools.lru_cache(maxsize=256)
def _request_tail(model: str, output_type: str, seed: int | None, temperature: float | None) -> str:
    return (
        f',"model":{canonical_json(model)},"output_type":{canonical_json(output_type)},'
        f'"seed":{canonical_json(seed)},"temperature":{canonical_json(temperature)}}}'
    )


@functools.lru_cache(maxsize=8192)
def _message_json(role: str, content: str) -> str:
    return canonical_json({"role": role, "content": content})
