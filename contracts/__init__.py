"""Contracts: what every layer agrees on, and imports nothing else of flightrec.

- Events: the chain-of-thought events (:data:`CotEvent`, one class per
  ``kind``; :data:`TERMINAL_KINDS` end an attempt; :func:`read_cot_event`
  reads a recorded one), the business events (:class:`LoanApplication`,
  :class:`LoanDecision`) and :class:`ReplayResult`; frozen pydantic models
  mirrored by the Avro schemas in ``schemas/``.
- Errors: one tree under :class:`FlightrecError`; :class:`FailureKind`, the
  closed set of ``error_type`` values derived from it (:func:`failure_kind`;
  a value recorded before the set was closed reads as a
  :class:`LegacyFailureKind`).
- Kafka headers: every header name flightrec writes (:data:`TRACEPARENT`,
  :data:`COT_KIND`, the ``DLQ_*`` and ``RULE_*`` names), defined once, and
  how values are written and read (:func:`traceparent`,
  :func:`parse_traceparent`, :func:`read_traceparent`, :func:`header_value`).
- :class:`RecordWriter`: the broker-confirmed writer protocol the ``DLQ`` rule
  action and the worker pipeline write through (``flightrec.kafka`` implements it).
- :class:`Settings`: all configuration, read once from ``FLIGHTREC_*``.
- The hash chain (:class:`ChainSealer`, :func:`verify_chain`; its verdict
  :class:`ChainReport`, a record's :class:`Integrity`), its signatures
  (:class:`RecordSigner`, :class:`Keyring`, :func:`verify_signatures`) and the
  chain-of-thought log record (:class:`LogRecord`).
- Team models: :func:`avro_schema_for` derives the Avro schema of a team's
  pydantic model, with fields marked :data:`PII` tagged (:func:`pii_fields_of`).
- Governance: the governed contracts (:data:`CONTRACTS`), the codec
  (:class:`Codec`) and ``flightrec contracts apply|check|show``
  (:func:`apply_contracts`, :func:`check_contracts`, :func:`show_subject`).

Every layer imports this package, so importing it stays cheap: the codec and
governance load confluent-kafka's schema-registry client and a CEL engine, and
are imported on first use of one of their names (docs/design.md, "Public API").
"""

import importlib as _importlib
import typing as _typing

from flightrec.contracts.chain import (
    ChainReport,
    ChainSealer,
    Integrity,
    event_hash,
    verify_chain,
    verify_signatures,
)
from flightrec.contracts.errors import (
    BudgetExceededError,
    ConfigError,
    ContractError,
    DecodeError,
    DivergenceError,
    FencedError,
    FlightrecError,
    ModelError,
    ModelOutputError,
    ModelRefusalError,
    ModelSchemaError,
    ModelUnavailableError,
    RecorderError,
    RegistryError,
    RegistryUnavailableError,
    ReplayError,
    RuleViolationError,
    SchemaFileError,
    SchemaIncompatibleError,
    StackError,
    ToolArgumentsError,
    ToolError,
    ToolHTTPError,
    ToolNotAllowedError,
    ToolTimeoutError,
    TraceNotFoundError,
    UnrecordableError,
)
from flightrec.contracts.events import (
    COT_KINDS,
    GENESIS_HASH,
    TERMINAL_KINDS,
    CotEvent,
    CotEventBase,
    Decision,
    DecisionOutcome,
    GenAiRef,
    LoanApplication,
    LoanDecision,
    ModelCall,
    ReplayResult,
    RunCompleted,
    RunFailed,
    RunStarted,
    SourceRef,
    Thought,
    ToolCall,
    ToolResult,
    canonical_json,
    cot_event_adapter,
    read_cot_event,
)
from flightrec.contracts.failures import (
    AnyFailureKind,
    FailureKind,
    LegacyFailureKind,
    failure_kind,
)
from flightrec.contracts.headers import (
    COT_KIND,
    COT_SUBJECT,
    DECISION_CHAIN_HEAD,
    DECISION_KEY_ID,
    DECISION_SIGNATURE,
    DLQ_CONTEXT,
    DLQ_ENCRYPTION,
    DLQ_ERROR_CLASS,
    DLQ_ERROR_FIELD,
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_RULE,
    DLQ_ERROR_TIME,
    DLQ_REDRIVEN_FROM,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_TRACE_ID,
    RULE_CONTENT_TYPE,
    RULE_ERROR_CLASS,
    RULE_ERROR_FIELD,
    RULE_ERROR_TIME,
    RULE_EXCEPTION,
    RULE_MODE,
    RULE_NAME,
    RULE_SUBJECT,
    RULE_TOPIC,
    TRACEPARENT,
    Header,
    header_value,
    parse_traceparent,
    read_traceparent,
    traceparent,
)
from flightrec.contracts.log_record import LogRecord, from_log_record, to_log_record
from flightrec.contracts.model_schema import PII, avro_schema_for, pii_fields_of
from flightrec.contracts.schema_files import CONTRACTS, ContractSpec, subject_for
from flightrec.contracts.settings import Settings, Topics
from flightrec.contracts.signing import Keyring, RecordSigner, SignedHead
from flightrec.contracts.writer import RecordWriter, SendOptions

if _typing.TYPE_CHECKING:
    from flightrec.contracts.codec import Codec
    from flightrec.contracts.governance import (
        Plan,
        SubjectPlan,
        apply_contracts,
        check_contracts,
        plan_contracts,
        show_subject,
    )

__all__ = [
    "CONTRACTS",
    "COT_KIND",
    "COT_KINDS",
    "COT_SUBJECT",
    "DECISION_CHAIN_HEAD",
    "DECISION_KEY_ID",
    "DECISION_SIGNATURE",
    "DLQ_CONTEXT",
    "DLQ_ENCRYPTION",
    "DLQ_ERROR_CLASS",
    "DLQ_ERROR_FIELD",
    "DLQ_ERROR_MESSAGE",
    "DLQ_ERROR_RULE",
    "DLQ_ERROR_TIME",
    "DLQ_REDRIVEN_FROM",
    "DLQ_SOURCE_OFFSET",
    "DLQ_SOURCE_PARTITION",
    "DLQ_SOURCE_TOPIC",
    "DLQ_TRACE_ID",
    "GENESIS_HASH",
    "PII",
    "RULE_CONTENT_TYPE",
    "RULE_ERROR_CLASS",
    "RULE_ERROR_FIELD",
    "RULE_ERROR_TIME",
    "RULE_EXCEPTION",
    "RULE_MODE",
    "RULE_NAME",
    "RULE_SUBJECT",
    "RULE_TOPIC",
    "TERMINAL_KINDS",
    "TRACEPARENT",
    "AnyFailureKind",
    "BudgetExceededError",
    "ChainReport",
    "ChainSealer",
    "Codec",
    "ConfigError",
    "ContractError",
    "ContractSpec",
    "CotEvent",
    "CotEventBase",
    "Decision",
    "DecisionOutcome",
    "DecodeError",
    "DivergenceError",
    "FailureKind",
    "FencedError",
    "FlightrecError",
    "GenAiRef",
    "Header",
    "Integrity",
    "Keyring",
    "LegacyFailureKind",
    "LoanApplication",
    "LoanDecision",
    "LogRecord",
    "ModelCall",
    "ModelError",
    "ModelOutputError",
    "ModelRefusalError",
    "ModelSchemaError",
    "ModelUnavailableError",
    "Plan",
    "RecordSigner",
    "RecordWriter",
    "RecorderError",
    "RegistryError",
    "RegistryUnavailableError",
    "ReplayError",
    "ReplayResult",
    "RuleViolationError",
    "RunCompleted",
    "RunFailed",
    "RunStarted",
    "SchemaFileError",
    "SchemaIncompatibleError",
    "SendOptions",
    "Settings",
    "SignedHead",
    "SourceRef",
    "StackError",
    "SubjectPlan",
    "Thought",
    "ToolArgumentsError",
    "ToolCall",
    "ToolError",
    "ToolHTTPError",
    "ToolNotAllowedError",
    "ToolResult",
    "ToolTimeoutError",
    "Topics",
    "TraceNotFoundError",
    "UnrecordableError",
    "apply_contracts",
    "avro_schema_for",
    "canonical_json",
    "check_contracts",
    "cot_event_adapter",
    "event_hash",
    "failure_kind",
    "from_log_record",
    "header_value",
    "parse_traceparent",
    "pii_fields_of",
    "plan_contracts",
    "read_cot_event",
    "read_traceparent",
    "show_subject",
    "subject_for",
    "to_log_record",
    "traceparent",
    "verify_chain",
    "verify_signatures",
]

# Exported name -> the module that defines it, imported on first access.
_DEFERRED = {
    "Codec": "flightrec.contracts.codec",
    "Plan": "flightrec.contracts.governance",
    "SubjectPlan": "flightrec.contracts.governance",
    "apply_contracts": "flightrec.contracts.governance",
    "check_contracts": "flightrec.contracts.governance",
    "plan_contracts": "flightrec.contracts.governance",
    "show_subject": "flightrec.contracts.governance",
}


if not _typing.TYPE_CHECKING:
    # Hidden from type checkers, which see the imports above instead: a module
    # __getattr__ would make them accept any name imported from this package.

    def __getattr__(name: str) -> object:
        module = _DEFERRED.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_DEFERRED})
