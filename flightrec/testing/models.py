"""Test models that ship in the package: ``ScriptedModel`` and ``FunctionModel``.

They implement the real :class:`flightrec.agents.model.Model` protocol (request hashes,
attempts, token estimates), so the runner and the recorder treat them exactly
like a remote model; only the answers are chosen by the test.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias

from flightrec.agents.model import Message, ModelInfo, ModelTurn, Transcript
from flightrec.agents.models.base import StepLike, error_turn, ok_turn
from flightrec.agents.steps import AgentStep
from flightrec.contracts.errors import ModelError
from flightrec.contracts.failures import FailureKind, failure_kind

__all__ = ["FunctionModel", "ScriptEntry", "ScriptedModel"]

ScriptEntry: TypeAlias = StepLike | ModelTurn | BaseException
"""One scripted answer: a step, a whole turn (to script retries), or an error."""


def _error_type(exc: BaseException) -> FailureKind:
    # Our own model errors keep their kind; anything else is reported as a
    # generic model error carrying the original class in the message.
    return failure_kind(exc) if isinstance(exc, ModelError) else FailureKind.MODEL


class ScriptedModel:
    """Answers each ``next_step`` with the next scripted entry.

    A step becomes a successful one-attempt turn; an exception becomes a failed
    attempt (``output=None``); a ``ModelTurn`` is returned as is. Past the end
    of the script every call fails with ``ModelOutputError``. ``requests`` keeps
    every transcript received and ``deadlines`` every ``deadline_s``, for
    assertions. It answers at once, so it has no use for the deadline itself.
    """

    def __init__(
        self, steps: Iterable[ScriptEntry], *, profile: str = "scripted", model: str = "scripted-1"
    ) -> None:
        self._script = list(steps)
        self._next = 0
        self._info = ModelInfo(provider="flightrec", model=model, profile=profile)
        self.requests: list[list[Message]] = []
        self.deadlines: list[float | None] = []

    @property
    def info(self) -> ModelInfo:
        """Provider ``flightrec``, the scripted model name and profile."""
        return self._info

    @property
    def remaining(self) -> int:
        """Scripted entries not served yet."""
        return len(self._script) - self._next

    async def next_step(
        self,
        transcript: Transcript,
        output_type: type[AgentStep],
        *,
        deadline_s: float | None = None,
    ) -> ModelTurn:
        """The next scripted answer (see the class docstring)."""
        self.requests.append(list(transcript))
        self.deadlines.append(deadline_s)
        if self._next >= len(self._script):
            return error_turn(
                self._info,
                transcript,
                output_type,
                FailureKind.MODEL_OUTPUT,
                "the script is exhausted",
            )
        entry = self._script[self._next]
        self._next += 1
        if isinstance(entry, ModelTurn):
            return entry
        if isinstance(entry, BaseException):
            message = f"{type(entry).__name__}: {entry}"
            return error_turn(self._info, transcript, output_type, _error_type(entry), message)
        return ok_turn(self._info, transcript, output_type, entry)


StepFunction: TypeAlias = Callable[
    [Transcript], "StepLike | ModelTurn | Awaitable[StepLike | ModelTurn]"
]


class FunctionModel:
    """Answers with ``fn(transcript)`` (sync or async).

    ``fn`` returns a step or a ``ModelTurn``; an exception it raises becomes a
    failed attempt, so a buggy test function is recorded rather than crashing.
    ``deadline_s`` is accepted and ignored: a slow or hanging ``fn`` is how tests
    show that the runner's own timeout still ends a model that overruns.
    """

    def __init__(
        self, fn: StepFunction, *, profile: str = "function", model: str = "function-1"
    ) -> None:
        self._fn = fn
        self._info = ModelInfo(provider="flightrec", model=model, profile=profile)

    @property
    def info(self) -> ModelInfo:
        """Provider ``flightrec``, the function model name and profile."""
        return self._info

    async def next_step(
        self,
        transcript: Transcript,
        output_type: type[AgentStep],
        *,
        deadline_s: float | None = None,
    ) -> ModelTurn:
        """Whatever ``fn`` answers for ``transcript``."""
        try:
            answer = self._fn(transcript)
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            return error_turn(self._info, transcript, output_type, _error_type(exc), message)
        if isinstance(answer, ModelTurn):
            return answer
        return ok_turn(self._info, transcript, output_type, answer)
