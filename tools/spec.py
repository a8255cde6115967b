"""``ToolSpec`` and the ``@tool`` decorator.

A tool is an async function whose first parameter is a pydantic model (its
arguments) and whose return annotation is a pydantic model (its result). It may
take a second parameter, the toolset's *context*: the object that owns shared
resources such as the HTTP client, so tools never open their own sessions::

    class EchoArgs(BaseModel):
        text: str

    class EchoResult(BaseModel):
        text: str

    @tool(timeout_s=2.0)
    async def echo(args: EchoArgs) -> EchoResult:
        \"\"\"Return the text unchanged.\"\"\"
        return EchoResult(text=args.text)

The decorator replaces the function by its :class:`ToolSpec`; the spec is inert
data, executed only through :class:`flightrec.tools.toolset.Toolset`, which applies the
allow-list, validation, timeout and error handling.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, get_type_hints, overload

from pydantic import BaseModel

from flightrec.contracts.errors import ConfigError

__all__ = ["ToolFunction", "ToolSpec", "tool"]

# The callable the toolset awaits: (validated arguments, context) -> result.
ToolFunction = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True)
class ToolSpec:
    """Everything the toolset needs to expose and run one tool.

    ``timeout_s`` of ``None`` means "the toolset's default" (``Settings.tool_timeout_s``).
    ``retryable`` is the retry hint recorded when the tool raises an exception
    that does not carry its own (a :class:`flightrec.contracts.errors.FlightrecError` does).
    """

    name: str
    description: str
    args_model: type[BaseModel]
    result_model: type[BaseModel]
    fn: ToolFunction
    timeout_s: float | None = None
    retryable: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ConfigError("tool name must be an identifier", tool=self.name)
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError("tool timeout must be positive", tool=self.name)

    def json_schema(self) -> dict[str, Any]:
        """JSON schema of the arguments, as given to the model (a fresh copy)."""
        copy: dict[str, Any] = json.loads(_schema_json(self.args_model))
        return copy

    def describe(self) -> dict[str, Any]:
        """Name, description and argument schema (the model-facing view)."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.json_schema(),
        }


@functools.lru_cache(maxsize=512)
def _schema_json(model: type[BaseModel]) -> str:
    # Generating a pydantic JSON schema costs ~0.25 ms and every run (and every
    # replayed run) describes its tools: once per model class is enough.
    return json.dumps(model.model_json_schema())


def _model_type(hint: Any, what: str, fn_name: str) -> type[BaseModel]:
    if not (isinstance(hint, type) and issubclass(hint, BaseModel)):
        raise ConfigError(f"tool {what} must be annotated with a pydantic model", tool=fn_name)
    return hint


def _build(
    fn: Callable[..., Awaitable[Any]],
    *,
    name: str | None,
    description: str | None,
    timeout_s: float | None,
    retryable: bool,
) -> ToolSpec:
    if not inspect.iscoroutinefunction(fn):
        raise ConfigError("a tool must be an async function", tool=fn.__name__)
    params = list(inspect.signature(fn).parameters.values())
    if not 1 <= len(params) <= 2:
        raise ConfigError(
            "a tool takes its arguments model and optionally a context", tool=fn.__name__
        )
    # get_type_hints resolves string annotations (``from __future__ import annotations``).
    hints = get_type_hints(fn)
    args_model = _model_type(hints.get(params[0].name), "argument", fn.__name__)
    result_model = _model_type(hints.get("return"), "result", fn.__name__)
    takes_context = len(params) == 2

    async def call(args: Any, context: Any) -> Any:
        if takes_context:
            return await fn(args, context)
        return await fn(args)

    doc = inspect.getdoc(fn) or ""
    return ToolSpec(
        name=name or fn.__name__,
        description=description if description is not None else doc.strip(),
        args_model=args_model,
        result_model=result_model,
        fn=call,
        timeout_s=timeout_s,
        retryable=retryable,
    )


@overload
def tool(fn: Callable[..., Awaitable[Any]], /) -> ToolSpec: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    retryable: bool = False,
) -> Callable[[Callable[..., Awaitable[Any]]], ToolSpec]: ...


def tool(
    fn: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    retryable: bool = False,
) -> ToolSpec | Callable[[Callable[..., Awaitable[Any]]], ToolSpec]:
    """Build a :class:`ToolSpec` from an async function (usable bare or with options).

    The name defaults to the function's name and the description to its
    docstring; the argument and result models come from the annotations.
    """

    def wrap(f: Callable[..., Awaitable[Any]]) -> ToolSpec:
        return _build(
            f, name=name, description=description, timeout_s=timeout_s, retryable=retryable
        )

    if fn is not None:
        return wrap(fn)
    return wrap
