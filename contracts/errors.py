"""The one error hierarchy of flightrec.

Every error carries context (keyword fields, shown in ``str()``) and says whether
retrying the same operation can help (``retryable``)::

    FlightrecError
    ├── ConfigError                  settings or wiring that cannot work (fail at start-up)
    │   └── AgentDefinitionError     an agent definition with a mistake (names agent and field)
    ├── ContractError                the data itself is wrong
    │   ├── SchemaFileError          a malformed .avsc (file, position)
    │   ├── SchemaIncompatibleError  the registry refused an evolution (409)
    │   ├── RuleViolationError       a data-contract rule failed (rule, field)
    │   ├── DecodeError              bytes that are not a record of the expected schema
    │   ├── ModelSchemaError         a pydantic model that cannot become an Avro schema (model, field)
    │   └── UnrecordableError        a value the record cannot hold: NaN, infinity, a lone surrogate
    ├── RegistryError                the schema registry answered with an error
    │   └── RegistryUnavailableError unreachable after bounded retries (retryable)
    ├── StackError                   the local stack cannot start / is missing a tool
    ├── ToolError                    a tool call failed (the toolset records it as an outcome)
    │   ├── ToolNotAllowedError      outside the agent's allow-list (terminal)
    │   ├── ToolArgumentsError       arguments failed validation (terminal)
    │   ├── ToolTimeoutError         the per-tool timeout expired (retryable)
    │   └── ToolHTTPError            an HTTP tool got a bad status or a host outside the allow-list
    ├── ModelError                   the model could not produce a valid step
    │   ├── ModelRefusalError        the model refused (terminal)
    │   ├── ModelOutputError         output failed validation / was cut off
    │   └── ModelUnavailableError    429 / 5xx / timeout after retries (retryable)
    ├── BudgetExceededError          step / token / time budget of a run exhausted
    ├── RecorderError                the recorder could not confirm delivery (retryable)
    ├── FencedError                  the input's partition moved to another worker mid-run
    └── ReplayError
        ├── TraceNotFoundError       no such trace or application
        └── DivergenceError          replay diverged from the recording (step, expected, actual)

``ToolError``, ``ModelError`` (with their subclasses) and ``BudgetExceededError``
are also the failure kinds a CoT event records in ``error_type``: one
:class:`~flightrec.contracts.failures.FailureKind` member each, named after the
class. Adding a class under them adds a kind (a test keeps the two in step).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentDefinitionError",
    "BudgetExceededError",
    "ConfigError",
    "ContractError",
    "DecodeError",
    "DivergenceError",
    "FencedError",
    "FlightrecError",
    "ModelError",
    "ModelOutputError",
    "ModelRefusalError",
    "ModelSchemaError",
    "ModelUnavailableError",
    "RecorderError",
    "RegistryError",
    "RegistryUnavailableError",
    "ReplayError",
    "RuleViolationError",
    "SchemaFileError",
    "SchemaIncompatibleError",
    "StackError",
    "ToolArgumentsError",
    "ToolError",
    "ToolHTTPError",
    "ToolNotAllowedError",
    "ToolTimeoutError",
    "TraceNotFoundError",
    "UnrecordableError",
]


class FlightrecError(Exception):
    """Base of every flightrec error.

    ``context`` holds the facts a reader needs (subject, field, trace id, ...);
    ``retryable`` says whether repeating the same operation can succeed.
    """

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = context
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{k}={v!r}" for k, v in self.context.items())
        return f"{self.message} ({details})"


class ConfigError(FlightrecError):
    """Settings or wiring that cannot work; raised at start-up."""


class AgentDefinitionError(ConfigError):
    """An agent definition that cannot run; ``agent`` and ``field`` say where."""


class ContractError(FlightrecError):
    """The data violates its contract."""


class SchemaFileError(ContractError):
    """A schema file is malformed; context names the file and position."""


class SchemaIncompatibleError(ContractError):
    """The registry refused a schema evolution (HTTP 409)."""


class RuleViolationError(ContractError):
    """A data-contract rule failed; context names the rule and the field."""


class DecodeError(ContractError):
    """Bytes that are not a valid record of the expected schema."""


class ModelSchemaError(ContractError):
    """A team's pydantic model cannot be turned into its Avro schema.

    Raised while an agent is being defined, before anything runs; context names
    the model and the field. (Not a :class:`ModelError`, which is about the LLM.)
    """


class UnrecordableError(ContractError, ValueError):
    """A value the record cannot hold: a number that is not finite (NaN and
    infinity are not JSON numbers) or text that UTF-8 cannot encode (a lone
    surrogate). ``path`` names where in the value it sits.

    Also a ``ValueError``, as ``json`` raises for the same values, so code that
    treated JSON that cannot be encoded as a ``ValueError`` still does.
    """


class RegistryError(FlightrecError):
    """The schema registry answered with an error."""


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached after bounded retries."""

    retryable = True


class StackError(FlightrecError):
    """The local stack cannot be started, stopped or found."""


class ToolError(FlightrecError):
    """A tool call failed. The toolset records it as an error result."""


class ToolNotAllowedError(ToolError):
    """The tool is not on the agent's allow-list."""


class ToolArgumentsError(ToolError):
    """The tool's arguments failed validation."""


class ToolTimeoutError(ToolError):
    """The tool did not answer within its timeout."""

    retryable = True


class ToolHTTPError(ToolError):
    """An HTTP tool got an error status, or its host is not allow-listed."""


class ModelError(FlightrecError):
    """The model could not produce a valid step."""


class ModelRefusalError(ModelError):
    """The model refused to answer."""


class ModelOutputError(ModelError):
    """The model's output failed validation or was cut off."""


class ModelUnavailableError(ModelError):
    """429, 5xx or timeout after the retry budget."""

    retryable = True


class BudgetExceededError(FlightrecError):
    """A run exhausted its step, token or time budget."""


class RecorderError(FlightrecError):
    """The recorder could not get a delivery confirmed by the broker."""

    retryable = True


class FencedError(FlightrecError):
    """The partition of the input being processed was revoked (a rebalance gave
    it to another worker), so this run may no longer publish or ack anything:
    the new owner redoes the input from the last committed offset.

    Not a :class:`RecorderError`: that one means a write was not confirmed and
    the worker must stop; this is the expected end of a run after a rebalance,
    so it neither stops the worker nor belongs in the DLQ. Not retryable: this
    worker no longer owns the input; the retry happens elsewhere.
    """


class ReplayError(FlightrecError):
    """Replay could not complete."""


class TraceNotFoundError(ReplayError):
    """No trace matches the id or business key (an application id, a claim id...)."""


class DivergenceError(ReplayError):
    """A replayed run asked for something other than the recording holds."""

    def __init__(
        self, message: str, *, step: int, expected: Any, actual: Any, **context: Any
    ) -> None:
        super().__init__(message, step=step, expected=expected, actual=actual, **context)
        self.step = step
        self.expected = expected
        self.actual = actual
