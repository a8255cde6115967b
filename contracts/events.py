"""Event models: chain-of-thought (CoT) events, business events, replay results.

Every model is frozen and forbids extra fields. CoT events share one envelope
and are discriminated by ``kind`` (one Avro subject holds all kinds). Free-form
JSON values (tool arguments, results, structured model output, run inputs) are
carried as canonical JSON text (``*_json`` fields) so that the bytes hashed by the
chain, the bytes in Avro and the bytes replay compares are the same.

Model call fields use the OpenTelemetry GenAI names with ``.`` replaced by ``_``
(``gen_ai_provider_name`` is ``gen_ai.provider.name``), because Avro field names
cannot contain dots. The envelope's optional ``gen_ai`` (:class:`GenAiRef`) holds
the same model data, nested, for a step whose kind has no field of its own for
it (a ``TOOL_CALL`` imported from a log record that names its model).

``error_type`` (``MODEL_CALL``, ``TOOL_RESULT``, ``RUN_FAILED``) is one of the
closed set :class:`~flightrec.contracts.failures.FailureKind`: building an event
with any other text fails. Readers of recorded events validate with
:data:`~flightrec.contracts.failures.RECORDED` (see :func:`read_cot_event`), so
a value recorded before the set was closed is read back verbatim.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from flightrec.contracts.errors import UnrecordableError
from flightrec.contracts.failures import RECORDED, ErrorType
from flightrec.contracts.model_schema import PII

__all__ = [
    "COT_KINDS",
    "GENESIS_HASH",
    "TERMINAL_KINDS",
    "CotEvent",
    "CotEventBase",
    "Decision",
    "DecisionOutcome",
    "GenAiRef",
    "LoanApplication",
    "LoanDecision",
    "ModelCall",
    "OutcomeLabel",
    "ReplayResult",
    "RunCompleted",
    "RunFailed",
    "RunStarted",
    "SourceRef",
    "Thought",
    "ToolCall",
    "ToolResult",
    "business_key_of",
    "canonical_json",
    "cot_event_adapter",
    "current_form",
    "read_cot_event",
    "recordable_text",
    "utc_micros",
]

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first event of a trace attempt."""

DecisionOutcome = Literal["APPROVE", "DECLINE", "REFER"]
"""The loan agent's outcome labels."""

OutcomeLabel = Annotated[str, Field(min_length=1, max_length=64)]
"""An agent's outcome label (``APPROVE``, ``PAY``...): each agent declares its own set."""
COT_KINDS: tuple[str, ...] = (
    "RUN_STARTED",
    "MODEL_CALL",
    "THOUGHT",
    "TOOL_CALL",
    "TOOL_RESULT",
    "DECISION",
    "RUN_FAILED",
    "RUN_COMPLETED",
)


# What json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
# allow_nan=False) builds on every call; one shared encoder gives the same text
# (it keeps no state between calls) without rebuilding it for each of the many
# small values.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, no whitespace, UTF-8 kept as is.

    Only what a record can hold: a number that is not finite (``NaN``,
    ``Infinity``: not JSON, and no two readers agree on them) or text that
    UTF-8 cannot encode (a lone surrogate such as ``"\\ud800"``, which the
    chain's hash and Avro would fail on later) raises
    :class:`~flightrec.contracts.errors.UnrecordableError` naming where it sits.
    """
    try:
        text = _CANONICAL.encode(value)
    except ValueError:  # allow_nan=False, or a circular value
        refused = _unrecordable(value, "$")
        if refused is None:
            raise
        raise refused from None
    # isascii() is a flag lookup: only text with non-ASCII characters pays the check.
    if not text.isascii() and not _encodable(text):
        raise _unrecordable(value, "$") or UnrecordableError(
            "text that UTF-8 cannot encode", path="$"
        )
    return text


def recordable_text(text: str) -> str:
    """``text`` as a record can hold it: unchanged when UTF-8 can encode it,
    else with each character it cannot (a lone surrogate) written as its
    escape (``\\ud800``), so what the model or tool said stays readable."""
    if text.isascii() or _encodable(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unrecordable(
    value: Any, path: str, within: frozenset[int] = frozenset()
) -> UnrecordableError | None:
    """The first value inside ``value`` a record cannot hold, as the error that
    names it (``within``: the containers being walked, so a cycle ends the walk)."""
    if isinstance(value, float) and not math.isfinite(value):
        return UnrecordableError(
            f"{value} is not a finite number: NaN and infinity are not JSON, and no record "
            "holds them",
            path=path,
        )
    if isinstance(value, str) and not _encodable(value):
        return UnrecordableError(
            f"text that UTF-8 cannot encode (a lone surrogate): {recordable_text(value)[:200]!r}",
            path=path,
        )
    if not isinstance(value, dict | list | tuple) or id(value) in within:
        return None
    within = within | {id(value)}
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{recordable_text(str(key))}"
            refused = _unrecordable(key, inner) or _unrecordable(item, inner, within)
            if refused is not None:
                return refused
        return None
    for index, item in enumerate(value):
        refused = _unrecordable(item, f"{path}[{index}]", within)
        if refused is not None:
            return refused
    return None


def utc_micros(value: datetime) -> datetime:
    """Normalise a timestamp to UTC with microsecond precision (Avro timestamp-micros)."""
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC)


def _json_text(value: str) -> str:
    json.loads(value)  # raises ValueError for text that is not JSON
    return value


JsonText = Annotated[str, AfterValidator(_json_text)]
TraceId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
SpanId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
Traceparent = Annotated[str, Field(pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
UtcTime = Annotated[datetime, AfterValidator(utc_micros)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceRef(_Frozen):
    """Where the input of a run came from: the idempotency key of the run."""

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key: str | None = None


# --------------------------------------------------------------------------- CoT


class GenAiRef(_Frozen):
    """The model behind a step, for kinds without model fields of their own.

    Field names are the OpenTelemetry GenAI attributes without the ``gen_ai.``
    prefix (``provider_name`` is ``gen_ai.provider.name``): ``GenAiRef.x`` means
    what a kind's own ``gen_ai_x`` field means. The runner never sets it (its
    MODEL_CALL events carry the model data); it keeps the model config and
    token counts of a chain-of-thought log record whose kind has no place for
    them (see :mod:`flightrec.contracts.log_record`).
    """

    provider_name: str | None = None
    request_model: str | None = None
    request_temperature: float | None = None
    usage_input_tokens: int | None = Field(default=None, ge=0)
    usage_output_tokens: int | None = Field(default=None, ge=0)


class CotEventBase(_Frozen):
    """The envelope every chain-of-thought event carries."""

    event_id: str = Field(min_length=1)
    trace_id: TraceId
    span_id: SpanId
    parent_span_id: SpanId | None = None
    attempt: int = Field(ge=1)
    seq: int = Field(ge=0, description="gap-free per trace and attempt")
    step: int = Field(ge=0, description="step index of the run loop (the log record's step_index)")
    agent: str
    agent_version: str
    prompt_version: str
    source: SourceRef
    ts: UtcTime
    prev_hash: Sha256Hex = GENESIS_HASH
    # The subject the run decides about: the value of the agent's business key
    # field (``application_id`` for the loan agent, ``claim_id`` for claims).
    # None only on events recorded before the envelope carried it: those name
    # the subject in ``RUN_STARTED.application_id`` / ``DECISION.application_id``
    # (see :func:`business_key_of`). None by default, so old events hash as
    # they were sealed.
    business_key: str | None = Field(default=None, description="the subject the run decides about")
    # None by default, so an event without it hashes (exclude_defaults) and
    # decodes exactly as before the field existed.
    gen_ai: GenAiRef | None = Field(
        default=None, description="model data the kind has no own fields for (imported records)"
    )
    # Set on the signed kinds only (DECISION and the terminal event; see
    # flightrec.contracts.signing). ``signature`` is left out of the canonical
    # form it signs; ``signing_key_id`` is part of it. None by default, so
    # events recorded before signing hash as they were sealed.
    signing_key_id: str | None = Field(
        default=None, description="id of the Ed25519 key that signed this event's chain hash"
    )
    signature: str | None = Field(
        default=None, description="base64 Ed25519 signature of this event's chain hash"
    )

    if TYPE_CHECKING:
        # Every kind declares ``kind`` as its own Literal field. Declared here for
        # the type checker only: a runtime property would shadow those fields
        # (pydantic refuses), and a field would join the envelope and its schema.
        @property
        def kind(self) -> str:
            """The event's kind (``RUN_STARTED``, ``MODEL_CALL``...)."""
            ...


class RunStarted(CotEventBase):
    """A run began: what the agent saw, and how it was configured."""

    kind: Literal["RUN_STARTED"] = "RUN_STARTED"
    application_id: str | None = Field(
        default=None, description="legacy: the loan application id, before business_key"
    )
    input_json: JsonText = Field(description="the input as the agent saw it; PII as digests")
    input_schema_id: int | None = None
    model_profile: str
    gen_ai_provider_name: str
    gen_ai_request_model: str
    tools: list[str]
    max_steps: int
    max_tokens: int
    deadline_s: float
    run_config_json: JsonText = "{}"
    # The trace context the input arrived with (another system's trace). The
    # run's trace id comes from the input's position, never from here: the
    # spans link to this context rather than continue it (docs/design.md,
    # "At-least-once, with attempts"). None by default, so a run started
    # without one, and every event recorded before the field existed, hashes
    # (exclude_defaults) and decodes exactly as before.
    upstream_traceparent: Traceparent | None = Field(
        default=None, description="the W3C traceparent header of the input (a link, not a parent)"
    )


class ModelCall(CotEventBase):
    """One call to the model (one per attempt, retries included)."""

    kind: Literal["MODEL_CALL"] = "MODEL_CALL"
    gen_ai_operation_name: str = "chat"
    gen_ai_provider_name: str
    gen_ai_request_model: str
    gen_ai_response_model: str | None = None
    gen_ai_request_temperature: float | None = None
    gen_ai_request_seed: int | None = None
    gen_ai_response_id: str | None = None
    gen_ai_response_finish_reasons: list[str] = Field(default_factory=list)
    gen_ai_usage_input_tokens: int = Field(default=0, ge=0)
    gen_ai_usage_output_tokens: int = Field(default=0, ge=0)
    request_hash: Sha256Hex
    call_attempt: int = Field(default=1, ge=1, description="1 for the first try, 2.. for retries")
    latency_ms: float = Field(ge=0)
    status: Literal["ok", "error"] = "ok"
    error_type: ErrorType | None = None
    error_message: str | None = None
    output_json: JsonText | None = Field(default=None, description="the full structured output")


class Thought(CotEventBase):
    """A reasoning step."""

    kind: Literal["THOUGHT"] = "THOUGHT"
    reasoning: str


class ToolCall(CotEventBase):
    """A tool call, recorded before the tool runs."""

    kind: Literal["TOOL_CALL"] = "TOOL_CALL"
    tool: str
    call_id: str
    arguments_json: JsonText
    reasoning: str = ""


class ToolResult(CotEventBase):
    """What a tool returned, or the typed error it ended with."""

    kind: Literal["TOOL_RESULT"] = "TOOL_RESULT"
    tool: str
    call_id: str
    status: Literal["ok", "error"]
    result_json: JsonText | None = None
    error_type: ErrorType | None = None
    error_message: str | None = None
    retryable: bool = False
    latency_ms: float = Field(ge=0)


class Decision(CotEventBase):
    """The business decision of the run: the agent's outcome label and its decision document.

    ``document_json`` is the agent's whole decision model (canonical JSON);
    ``outcome``, ``reasons`` and ``confidence`` repeat the three fields every
    decision model has, so readers need not know the agent. Events recorded
    before the document existed carry the loan decision's fields instead
    (``application_id``, ``conditions``); :func:`current_form` rewrites them.
    """

    kind: Literal["DECISION"] = "DECISION"
    application_id: str | None = Field(
        default=None, description="legacy: the loan application id, before business_key"
    )
    outcome: OutcomeLabel
    reasons: list[str] = Field(min_length=1)
    conditions: list[str] = Field(
        default_factory=list, description="legacy: loan conditions, now in document_json"
    )
    confidence: float = Field(ge=0.0, le=1.0)
    document_json: JsonText | None = Field(
        default=None, description="the agent's full decision document"
    )


class RunFailed(CotEventBase):
    """The run could not finish normally; ``reason`` says why (budget, model, tool...)."""

    kind: Literal["RUN_FAILED"] = "RUN_FAILED"
    error_type: ErrorType
    reason: str
    retryable: bool = False


class RunCompleted(CotEventBase):
    """The last event of a complete attempt."""

    kind: Literal["RUN_COMPLETED"] = "RUN_COMPLETED"
    outcome: OutcomeLabel
    steps: int = Field(ge=0)
    gen_ai_usage_input_tokens: int = Field(ge=0)
    gen_ai_usage_output_tokens: int = Field(ge=0)
    duration_ms: float = Field(ge=0)


CotEvent = Annotated[
    RunStarted | ModelCall | Thought | ToolCall | ToolResult | Decision | RunFailed | RunCompleted,
    Field(discriminator="kind"),
]
"""Any chain-of-thought event, discriminated by ``kind``."""

cot_event_adapter: TypeAdapter[CotEvent] = TypeAdapter(CotEvent)


def _kind(model: type[CotEventBase]) -> str:
    return str(model.model_fields["kind"].default)


TERMINAL_KINDS: frozenset[str] = frozenset(_kind(m) for m in (RunCompleted, RunFailed))
"""Kinds that end an attempt: the last event of every run that was not interrupted."""


def read_cot_event(data: Any) -> CotEvent:
    """A recorded CoT event from its fields (a mapping) or its JSON text.

    Validates like any event, except that an ``error_type`` outside the closed
    set is kept verbatim (records written before the set was closed)."""
    if isinstance(data, str | bytes):
        return cot_event_adapter.validate_json(data, context=RECORDED)
    return cot_event_adapter.validate_python(data, context=RECORDED)


def business_key_of(event: CotEventBase) -> str | None:
    """The subject an event is about: its ``business_key``, or for an event recorded
    before the envelope carried one, the ``application_id`` of its payload."""
    if event.business_key is not None:
        return event.business_key
    legacy: str | None = getattr(event, "application_id", None)
    return legacy


def _legacy_document(decision: Decision) -> str:
    # Every decision recorded before the document existed is the loan agent's,
    # whose decision document is exactly these four fields.
    return canonical_json(
        {
            "outcome": decision.outcome,
            "reasons": list(decision.reasons),
            "conditions": list(decision.conditions),
            "confidence": decision.confidence,
        }
    )


def current_form(event: CotEvent, business_key: str | None) -> CotEvent:
    """``event`` as the runner writes it today, for comparing a recorded event with a re-run.

    An event recorded before the envelope carried ``business_key`` gets the
    trace's key; the legacy ``application_id`` moves there, and a legacy
    ``DECISION`` gets the decision document its fields make up. A current event
    comes back unchanged. Only for comparison: the chain is verified on the
    event as recorded.
    """
    if event.business_key is not None:
        return event
    update: dict[str, Any] = {"business_key": business_key}
    if isinstance(event, RunStarted | Decision):
        update["application_id"] = None
    if isinstance(event, Decision) and event.document_json is None:
        update["document_json"] = _legacy_document(event)
        update["conditions"] = []
    return event.model_copy(update=update)


# --------------------------------------------------------------------- business


class LoanApplication(_Frozen):
    """Input: a loan application. Fields marked :data:`PII` (and tagged PII in
    the Avro schema) are ``applicant_name``, ``national_id``,
    ``date_of_birth``, ``address``, ``email`` and ``bank_account``. ``purpose``
    and ``notes`` are free text written by the applicant: data, never
    instructions."""

    application_id: str = Field(min_length=1)
    submitted_at: UtcTime
    applicant_name: Annotated[str, PII]
    national_id: Annotated[str, PII]
    date_of_birth: Annotated[str, PII] = Field(description="ISO date")
    address: Annotated[str, PII]
    email: Annotated[str, PII]
    bank_account: Annotated[str, PII]
    applicant_age: int
    amount: float
    currency: str
    term_months: int
    annual_income: float
    monthly_debt_payments: float
    employment_status: Literal["EMPLOYED", "SELF_EMPLOYED", "UNEMPLOYED", "RETIRED", "STUDENT"]
    employment_years: float = 0.0
    purpose: str = ""
    notes: str = ""


class LoanDecision(_Frozen):
    """Output: the decision on an application, carrying the trace that explains it."""

    application_id: str
    trace_id: TraceId
    attempt: int = Field(ge=1)
    outcome: DecisionOutcome
    reasons: list[str]
    conditions: list[str] = Field(default_factory=list)
    confidence: float = Field(ge=0.0, le=1.0)
    agent: str
    agent_version: str
    prompt_version: str
    model_profile: str
    decided_at: UtcTime
    source: SourceRef


class ReplayResult(_Frozen):
    """Output of replay: a verification or a re-evaluation of one recorded trace."""

    replay_id: str
    replay_of: TraceId
    mode: Literal["VERIFY", "REEVALUATE"]
    status: Literal["REPRODUCED", "DIVERGED", "CHANGED", "UNCHANGED", "ABORTED", "ERROR"]
    attempt: int = Field(ge=1)
    agent: str
    agent_version: str
    prompt_version: str
    model_profile: str
    old_outcome: OutcomeLabel | None = None
    new_outcome: OutcomeLabel | None = None
    first_diff_step: int | None = None
    expected: str | None = None
    actual: str | None = None
    message: str = ""
    ts: UtcTime
