"""Failure kinds: the closed set of ``error_type`` values a CoT event may carry.

``MODEL_CALL``, ``TOOL_RESULT`` and ``RUN_FAILED`` say why something failed in
``error_type``. The value is one :class:`FailureKind`, never free text, so a typo
cannot write a new kind into the permanent log.

The set is derived from the error classes of :mod:`flightrec.contracts.errors`:
every class under ``ToolError`` and ``ModelError``, and ``BudgetExceededError``,
is one member whose value is the class name (``failure_kind(exc)`` maps an
exception to it). Two members are no class:

* ``UNEXPECTED`` (``"UnexpectedError"``): an exception outside those classes,
  such as a tool's own ``ValueError``; the message says what it was;
* ``TOOL_UNAVAILABLE`` (``"ToolUnavailable"``): re-evaluation asked for a tool
  answer the recording does not hold and live tools are off.

A test keeps the set and the classes in step.

Writing: an :data:`ErrorType` field accepts a member, or text equal to a
member's value (stored as the member); any other text fails validation when the
event is built.

Reading: records written before the set was closed hold the class name of
whatever a tool raised (``"RuntimeError"``, ``"TimeoutError"``, ...). Reading
such a record must not fail, and must not change it: the hash chain covers the
event's canonical JSON, and replay compares what it replays with what was
recorded. So a reader validates with :data:`RECORDED` as the pydantic context
(``cot_from_avro`` and the log-record import do), and a value outside the set
is then kept verbatim as a :class:`LegacyFailureKind`. Only that path creates
one; replay hands it back to the runner as the recorded outcome, and the
replayed event carries it unchanged. The Avro field stays a ``string``: an Avro
enum would make every such record unreadable and the change incompatible for
the registered subject.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, TypeAlias

from pydantic import PlainSerializer, PlainValidator, ValidationInfo

from flightrec.contracts import errors
from flightrec.contracts.errors import (
    BudgetExceededError,
    ModelError,
    ModelOutputError,
    ModelRefusalError,
    ModelUnavailableError,
    ToolArgumentsError,
    ToolError,
    ToolHTTPError,
    ToolNotAllowedError,
    ToolTimeoutError,
)

__all__ = [
    "CLASSLESS_KINDS",
    "FAILURE_ROOTS",
    "RECORDED",
    "AnyFailureKind",
    "ErrorType",
    "FailureKind",
    "LegacyFailureKind",
    "failure_kind",
]


class FailureKind(StrEnum):
    """Why a model call, a tool call or a run failed (see the module docstring)."""

    TOOL = ToolError.__name__
    TOOL_NOT_ALLOWED = ToolNotAllowedError.__name__
    TOOL_ARGUMENTS = ToolArgumentsError.__name__
    TOOL_TIMEOUT = ToolTimeoutError.__name__
    TOOL_HTTP = ToolHTTPError.__name__
    MODEL = ModelError.__name__
    MODEL_REFUSAL = ModelRefusalError.__name__
    MODEL_OUTPUT = ModelOutputError.__name__
    MODEL_UNAVAILABLE = ModelUnavailableError.__name__
    BUDGET_EXCEEDED = BudgetExceededError.__name__
    UNEXPECTED = "UnexpectedError"
    TOOL_UNAVAILABLE = "ToolUnavailable"


FAILURE_ROOTS: tuple[type[Exception], ...] = (ToolError, ModelError, BudgetExceededError)
"""The error classes whose subclasses (and themselves) are failure kinds."""

CLASSLESS_KINDS: frozenset[FailureKind] = frozenset(
    {FailureKind.UNEXPECTED, FailureKind.TOOL_UNAVAILABLE}
)
"""The members that name no error class."""

# Every other member's value is the name of its class in contracts.errors.
_KIND_OF_CLASS: Mapping[type, FailureKind] = MappingProxyType(
    {getattr(errors, kind.value): kind for kind in FailureKind if kind not in CLASSLESS_KINDS}
)


def failure_kind(error: BaseException) -> FailureKind:
    """The kind of ``error``: that of its class, or of the nearest base class
    that has one; ``UNEXPECTED`` for any other exception."""
    for cls in type(error).__mro__:
        kind = _KIND_OF_CLASS.get(cls)
        if kind is not None:
            return kind
    return FailureKind.UNEXPECTED


class LegacyFailureKind(str):
    """An ``error_type`` read from a record that is no :class:`FailureKind`
    (written before the set was closed); kept verbatim."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"LegacyFailureKind({str.__repr__(self)})"


AnyFailureKind: TypeAlias = FailureKind | LegacyFailureKind
"""What an ``error_type`` holds: a member, or a recorded value outside the set."""

_RECORDED_KEY = "flightrec.recorded"
RECORDED: Mapping[str, Any] = MappingProxyType({_RECORDED_KEY: True})
"""Pydantic validation context of a reader: text outside the set is kept as a
:class:`LegacyFailureKind` instead of failing."""


def _validate(value: Any, info: ValidationInfo) -> AnyFailureKind:
    if isinstance(value, FailureKind | LegacyFailureKind):
        return value
    if not isinstance(value, str):
        raise ValueError(f"a failure kind is text, not {type(value).__name__}")
    try:
        return FailureKind(value)
    except ValueError:
        context = info.context
        if isinstance(context, Mapping) and context.get(_RECORDED_KEY):
            return LegacyFailureKind(value)
    raise ValueError(f"{value!r} is not a failure kind; one of {', '.join(FailureKind)}")


def _text(value: AnyFailureKind) -> str:
    # Plain text out, whatever the subclass: Avro writers, CEL rules and the
    # chain's canonical JSON all see the string a reader will read back.
    return str.__str__(value)


ErrorType = Annotated[
    AnyFailureKind,
    PlainValidator(_validate, json_schema_input_type=str),
    PlainSerializer(_text, return_type=str),
]
"""The pydantic type of an ``error_type`` field (validation as the module docstring says)."""
