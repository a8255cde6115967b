"""The ``Model`` protocol: one structured step per call, with call metadata.

Implementations: ``OpenAIModel`` (any OpenAI-compatible endpoint),
``PolicyModel`` (deterministic, offline), ``ScriptedModel`` / ``FunctionModel``
(tests), and replay's ``ReplayModel``. A model is asked with a
:class:`ModelRequest` and returns every attempt it made (retries included) so
the runner can record each one as a ``MODEL_CALL``. :class:`ModelAttempt` owns
the mapping between an attempt and its ``MODEL_CALL`` fields, both ways
(:meth:`ModelAttempt.call_fields`, :meth:`ModelAttempt.from_call`): the runner
records with one, replay rebuilds the attempt with the other.

The run's time budget reaches the model as ``ModelRequest.deadline_s``: the
seconds left when the call is made. It is relative on purpose: the runner
judges time on ``RunContext`` (the monotonic clock live, the recorded time in
replay) and the model on its own clock, and "seconds left" means the same on
both. A model that makes requests bounds each one by it and starts no try or
backoff that would end past it; when it stops for that reason it returns the
attempts it made plus a last error attempt of kind ``BUDGET_EXCEEDED``,
so the record shows every try and why the turn ended. The deadline is not part
of what is asked: it is never in :func:`request_hash`, so recordings made before
it existed replay unchanged. The runner still wraps the call in a timeout a
little past the deadline, so a model that ignores it cannot hang a run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from flightrec.agents.steps import AgentStep
from flightrec.contracts.events import ModelCall, canonical_json, recordable_text
from flightrec.contracts.failures import AnyFailureKind, ErrorType

__all__ = [
    "MAX_ERROR_TEXT",
    "ClosableModel",
    "Message",
    "Model",
    "ModelAttempt",
    "ModelInfo",
    "ModelRequest",
    "ModelTurn",
    "Transcript",
    "request_hash",
]

MAX_ERROR_TEXT = 2000
"""Longest ``error_message`` an attempt keeps (a stack of proxy errors can be long)."""


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
    # Hashed into every request and recorded: NaN would make each run fail.
    temperature: float | None = Field(default=None, allow_inf_nan=False)
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What one ``next_step`` call asks: the conversation and the step type to
    answer with, plus the seconds the run has left (None: no deadline), which
    bound the call but are not part of the question (see the module docstring)."""

    transcript: Transcript
    output_type: type[AgentStep] = AgentStep
    deadline_s: float | None = None

    def hash(self, info: ModelInfo) -> str:
        """:func:`request_hash` of this question put to ``info``'s model."""
        return request_hash(info, self.transcript, self.output_type)


# ModelAttempt field -> MODEL_CALL field: the one place the two are paired.
_CALL_FIELDS: Mapping[str, str] = types.MappingProxyType(
    {
        "request_hash": "request_hash",
        "call_attempt": "call_attempt",
        "latency_ms": "latency_ms",
        "status": "status",
        "response_model": "gen_ai_response_model",
        "response_id": "gen_ai_response_id",
        "finish_reasons": "gen_ai_response_finish_reasons",
        "input_tokens": "gen_ai_usage_input_tokens",
        "output_tokens": "gen_ai_usage_output_tokens",
        "error_type": "error_type",
        "error_message": "error_message",
        "output_json": "output_json",
    }
)


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

    @classmethod
    def failed(
        cls,
        request_hash: str,
        error_type: AnyFailureKind,
        message: str,
        *,
        call_attempt: int = 1,
        latency_ms: float = 0.0,
        **details: Any,
    ) -> ModelAttempt:
        """A failed try (``status="error"``); the message is cut to :data:`MAX_ERROR_TEXT`."""
        return cls(
            request_hash=request_hash,
            call_attempt=call_attempt,
            latency_ms=latency_ms,
            status="error",
            error_type=error_type,
            error_message=message[:MAX_ERROR_TEXT],
            **details,
        )

    def call_fields(self, info: ModelInfo) -> dict[str, Any]:
        """The ``MODEL_CALL`` fields that record this try of ``info``'s model.

        ``output_json`` must be JSON there: output that is not (the model wrote
        prose or broken JSON) is kept wrapped as ``{"unparsed_output": ...}``.
        """
        fields = {call: getattr(self, name) for name, call in _CALL_FIELDS.items()}
        fields["gen_ai_response_finish_reasons"] = list(self.finish_reasons)
        fields["output_json"] = _json_or_wrapped(self.output_json)
        fields.update(
            gen_ai_provider_name=info.provider,
            gen_ai_request_model=info.model,
            gen_ai_request_temperature=info.temperature,
            gen_ai_request_seed=info.seed,
        )
        return fields

    def recordable(self) -> ModelAttempt:
        """This try as a record can hold it: text UTF-8 cannot encode (a lone
        surrogate, which a model or its client may hand over) written as its
        escape, and output holding such text kept as ``{"unparsed_output": ...}``;
        ``self`` when nothing needed it (the usual case)."""
        update: dict[str, Any] = {}
        for name in ("response_model", "response_id", "error_message"):
            text = getattr(self, name)
            if text is not None and recordable_text(text) is not text:
                update[name] = recordable_text(text)
        reasons = tuple(recordable_text(r) for r in self.finish_reasons)
        if reasons != self.finish_reasons:
            update["finish_reasons"] = reasons
        output = self.output_json
        if output is not None and recordable_text(output) is not output:
            update["output_json"] = canonical_json({"unparsed_output": recordable_text(output)})
        return self.model_copy(update=update) if update else self

    def refused(self, error_type: AnyFailureKind, message: str) -> ModelAttempt:
        """This try, failed with ``error_type``: the model answered, but not
        with a step that can stand (its tokens and output are kept)."""
        return self.model_copy(
            update={
                "status": "error",
                "error_type": error_type,
                "error_message": message[:MAX_ERROR_TEXT],
            }
        )

    @classmethod
    def from_call(cls, call: ModelCall) -> ModelAttempt:
        """The try a ``MODEL_CALL`` recorded, as the live model returned it."""
        return cls(**{name: getattr(call, field) for name, field in _CALL_FIELDS.items()})


def _json_or_wrapped(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        json.loads(text)
    except ValueError:
        return canonical_json({"unparsed_output": text})
    return text


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

    async def next_step(self, request: ModelRequest) -> ModelTurn:
        """Return the next step for ``request``. Never raises for model-side
        failures: they come back as attempts with ``status="error"`` and
        ``output=None``.

        A model that waits on anything honours ``request.deadline_s`` as the
        module docstring says; a model that answers at once may ignore it.
        """
        ...


class ClosableModel(Model, Protocol):
    """A model whose owner closes it when done (the worker, with what
    ``build_model`` made): it may hold connections, like ``OpenAIModel``.

    Kept apart from :class:`Model` so a model that is only asked (test and
    replay models) need not grow an ``aclose`` of its own.
    """

    async def aclose(self) -> None:
        """Release what the model holds (nothing, for a model that holds nothing)."""
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
