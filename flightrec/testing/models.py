"""Test models that ship in the package: ``ScriptedModel`` and ``FunctionModel``.

They implement the real :class:`flightrec.agents.model.Model` protocol (request hashes,
attempts, token estimates), so the runner and the recorder treat them exactly
like a remote model; only the answers are chosen by the test.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias

from flightrec.agents.model import Message, ModelInfo, ModelRequest, ModelTurn, Transcript
from flightrec.agents.models.base import StepLike, error_turn, ok_turn
from flightrec.contracts.errors import ModelError
from flightrec.contracts.failures import FailureKind, failure_kind

__all__ = ["FunctionModel", "ScriptEntry", "ScriptedModel"]

ScriptEntry: TypeAlias = StepLike | ModelTurn | BaseException
"""One scripted answer: a step, a whole turn (to script retries), or an error."""


def _failed_turn(info: ModelInfo, request: ModelRequest, exc: BaseException) -> ModelTurn:
    # Our own model errors keep their kind; anything else is reported as a
    # generic model error. The message names the original class either way.
    kind = failure_kind(exc) if isinstance(exc, ModelError) else FailureKind.MODEL
    return error_turn(info, request, kind, f"{type(exc).__name__}: {exc}")


class ScriptedModel:
    """Answers each ``next_step`` with the next scripted entry.

    A step becomes a successful one-attempt turn; an exception becomes a failed
    attempt (``output=None``); a ``ModelTurn`` is returned as is. Past the end
    of the script every call fails with ``ModelOutputError``. ``requests`` keeps
    every transcript received and ``deadlines`` every request's ``deadline_s``, for
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

    async def next_step(self, request: ModelRequest) -> ModelTurn:
        """The next scripted answer (see the class docstring)."""
        self.requests.append(list(request.transcript))
        self.deadlines.append(request.deadline_s)
        if self._next >= len(self._script):
            exhausted = "the script is exhausted"
            return error_turn(self._info, request, FailureKind.MODEL_OUTPUT, exhausted)
        entry = self._script[self._next]
        self._next += 1
        if isinstance(entry, ModelTurn):
            return entry
        if isinstance(entry, BaseException):
            return _failed_turn(self._info, request, entry)
        return ok_turn(self._info, request, entry)


StepFunction: TypeAlias = Callable[
    [Transcript], "StepLike | ModelTurn | Awaitable[StepLike | ModelTurn]"
]


class FunctionModel:
    """Answers with ``fn(transcript)`` (sync or async).

    ``fn`` returns a step or a ``ModelTurn``; an exception it raises becomes a
    failed attempt, so a buggy test function is recorded rather than crashing.
    The request's ``deadline_s`` is ignored: a slow or hanging ``fn`` is how tests
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

    async def next_step(self, request: ModelRequest) -> ModelTurn:
        """Whatever ``fn`` answers for the request's transcript."""
        try:
            answer = self._fn(request.transcript)
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception as exc:
            return _failed_turn(self._info, request, exc)
        if isinstance(answer, ModelTurn):
            return answer
        return ok_turn(self._info, request, answer)
