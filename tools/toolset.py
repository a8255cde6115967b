"""``Toolset``: the live :class:`flightrec.tools.base.ToolExecutor`.

One call goes through, in order:

1. the allow-list (a tool outside it never runs: ``ToolNotAllowedError``);
2. PII tokens in argument strings are swapped for the real values of the run's
   ``pii_vault``, because the tool must act on real data;
3. argument validation with the tool's pydantic model (``ToolArgumentsError``,
   terminal; the message names fields and problems, never input values);
4. the per-tool timeout (``ToolTimeoutError``, retryable);
5. result validation with the result model, then every real PII value in the
   result is swapped back for its token, so neither the model nor the recording
   sees it.

Every failure of the tool is returned as ``ToolOutcome(status="error")`` with the
exception's failure kind (``failure_kind``: ``UnexpectedError`` for an exception
that is not one of ours) and retry hint; ``call`` raises only on cancellation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from flightrec.contracts.errors import (
    ConfigError,
    FlightrecError,
    ToolArgumentsError,
    ToolError,
    ToolNotAllowedError,
    ToolTimeoutError,
)
from flightrec.contracts.failures import failure_kind
from flightrec.contracts.substitution import Substitution
from flightrec.tools.base import ToolOutcome
from flightrec.tools.spec import ToolSpec

__all__ = ["PiiSwap", "Toolset"]


class PiiSwap:
    """Token <-> value substitution for one call, built from a run's vault
    (both ways a :class:`~flightrec.contracts.substitution.Substitution`, which
    every PII scrub goes through: an embedded token is swapped too, and one
    that is a prefix of another cannot corrupt it).

    Every real value is concealed again, however short: the tool saw exactly
    what :meth:`reveal` gave it.
    """

    def __init__(self, vault: Mapping[str, str] | None) -> None:
        pairs = [(tok, val) for tok, val in (vault or {}).items() if tok and val]
        self._to_real = Substitution(pairs)
        self._to_token = Substitution((val, tok) for tok, val in pairs)

    def reveal(self, value: Any) -> Any:
        """``value`` with tokens replaced by real values (recursively)."""
        return self._to_real.value(value)

    def conceal(self, value: Any) -> Any:
        """``value`` with real values replaced by their tokens (recursively)."""
        return self._to_token.value(value)

    def conceal_text(self, text: str) -> str:
        """One string with real values replaced by their tokens."""
        return self._to_token.text(text)


def _validation_message(exc: ValidationError) -> str:
    # pydantic's str() echoes the input values, which may be real PII once
    # tokens are revealed: keep only locations and problems.
    problems = [
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
    ]
    return "; ".join(problems)


class Toolset:
    """Allow-listed, validated, time-boxed tool calls; errors become outcomes.

    ``allowed`` is the agent's allow-list (``None``: every spec). Naming a tool
    that has no spec is a wiring error raised at construction. ``context`` is
    handed to tools that take one (shared HTTP client, settings, ...).
    """

    def __init__(
        self,
        specs: Iterable[ToolSpec],
        *,
        allowed: Iterable[str] | None = None,
        context: Any = None,
        default_timeout_s: float = 5.0,
    ) -> None:
        self._specs: dict[str, ToolSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ConfigError("two tools share a name", tool=spec.name)
            self._specs[spec.name] = spec
        names = frozenset(self._specs) if allowed is None else frozenset(allowed)
        unknown = names - self._specs.keys()
        if unknown:
            raise ConfigError("allow-list names tools that do not exist", tools=sorted(unknown))
        if default_timeout_s <= 0:
            raise ConfigError("default tool timeout must be positive")
        self._allowed = names
        self._context = context
        self._default_timeout_s = default_timeout_s

    @property
    def allowed(self) -> frozenset[str]:
        """Names of the tools this toolset will run."""
        return self._allowed

    def spec(self, name: str) -> ToolSpec:
        """The spec of an allowed tool (``ToolNotAllowedError`` otherwise)."""
        if name not in self._allowed:
            raise ToolNotAllowedError("tool is not on the allow-list", tool=name)
        return self._specs[name]

    def describe(self) -> list[dict[str, Any]]:
        """Name, description and JSON schema (``parameters``) of each allowed tool,
        sorted by name so the prompt is stable."""
        return [self._specs[name].describe() for name in sorted(self._allowed)]

    async def call(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        call_id: str,
        pii_vault: Mapping[str, str] | None = None,
    ) -> ToolOutcome:
        """Run ``tool``; never raises for tool-side failures (see module docstring)."""
        started = time.perf_counter()
        swap = PiiSwap(pii_vault)
        try:
            result = await self._run(tool, arguments, call_id, swap)
        except Exception as exc:  # every tool failure is an outcome, not an exception
            return self._error(tool, exc, swap, started)
        return ToolOutcome(status="ok", result=result, latency_ms=_ms_since(started))

    async def _run(
        self, tool: str, arguments: Mapping[str, Any], call_id: str, swap: PiiSwap
    ) -> dict[str, Any]:
        spec = self.spec(tool)
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError("arguments must be an object", tool=tool, call_id=call_id)
        try:
            args = spec.args_model.model_validate(swap.reveal(dict(arguments)))
        except ValidationError as exc:
            raise ToolArgumentsError(
                f"invalid arguments: {_validation_message(exc)}", tool=tool, call_id=call_id
            ) from None
        timeout_s = spec.timeout_s if spec.timeout_s is not None else self._default_timeout_s
        try:
            async with asyncio.timeout(timeout_s) as scope:
                raw = await spec.fn(args, self._context)
        except TimeoutError:
            # Only our own deadline is a ToolTimeoutError; a TimeoutError raised
            # inside the tool is reported as whatever it is.
            if scope.expired():
                raise ToolTimeoutError(
                    "tool did not answer in time", tool=tool, call_id=call_id, timeout_s=timeout_s
                ) from None
            raise
        concealed: dict[str, Any] = swap.conceal(self._result(spec, raw, call_id))
        return concealed

    @staticmethod
    def _result(spec: ToolSpec, raw: Any, call_id: str) -> dict[str, Any]:
        try:
            model = (
                raw
                if isinstance(raw, spec.result_model)
                else spec.result_model.model_validate(
                    raw.model_dump() if isinstance(raw, BaseModel) else raw
                )
            )
        except ValidationError as exc:
            raise ToolError(
                f"tool returned an invalid result: {_validation_message(exc)}",
                tool=spec.name,
                call_id=call_id,
            ) from None
        dumped: dict[str, Any] = model.model_dump(mode="json")
        return dumped

    def _error(self, tool: str, exc: Exception, swap: PiiSwap, started: float) -> ToolOutcome:
        if isinstance(exc, FlightrecError):
            retryable = exc.retryable
        else:
            spec = self._specs.get(tool)
            retryable = spec.retryable if spec is not None else False
        return ToolOutcome(
            status="error",
            error_type=failure_kind(exc),
            error_message=swap.conceal_text(str(exc) or type(exc).__name__),
            retryable=retryable,
            latency_ms=_ms_since(started),
        )


def _ms_since(started: float) -> float:
    return max(0.0, (time.perf_counter() - started) * 1000.0)
