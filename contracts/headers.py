"""The Kafka headers of the records flightrec writes: names, and how values read.

Headers are part of the contract a consumer reads, as much as the Avro
schemas: a reader skips CoT records by kind without decoding them, follows a
decision or an event to its trace, and learns from a DLQ record where the
input came from and why it failed. Every writer and reader takes the names
from here (docs/design.md, "Topics").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "COT_KIND",
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
    "RULE_CONTENT_TYPE",
    "RULE_ERROR_CLASS",
    "RULE_ERROR_FIELD",
    "RULE_ERROR_TIME",
    "RULE_EXCEPTION",
    "RULE_MODE",
    "RULE_NAME",
    "RULE_SUBJECT",
    "RULE_TOPIC",
    "TRACEPARENT",
    "Header",
    "header_value",
    "parse_traceparent",
    "read_traceparent",
    "traceparent",
]

Header = tuple[str, bytes]
"""One Kafka header as flightrec writes it: name and raw value."""

# -- every record of a trace (CoT events, decisions) --------------------------

TRACEPARENT = "traceparent"
"""W3C trace context of the record: ``00-<trace id>-<span id>-01``."""

# -- CoT records (``agent.cot``) ----------------------------------------------

COT_KIND = "flightrec-kind"
"""The event kind (``THOUGHT``, ``RUN_COMPLETED``...): readers skip kinds without decoding."""
COT_SUBJECT = "flightrec-subject"
"""The business key the run is about (e.g. the application id; never PII)."""

# -- decision records (the agent's decisions topic) ---------------------------

DECISION_CHAIN_HEAD = "flightrec-chain-head"
"""Chain hash of the run's ``DECISION`` event in the CoT (hex SHA-256)."""
DECISION_SIGNATURE = "flightrec-signature"
"""The recorder's Ed25519 signature of that hash (base64): the two topics vouch
for each other (docs/design.md, "Signed and anchored records")."""
DECISION_KEY_ID = "flightrec-key-id"
"""Id of the key that made the signature."""

# -- input records the worker dead-letters (applications DLQ) -----------------

DLQ_SOURCE_TOPIC = "flightrec-source-topic"
DLQ_SOURCE_PARTITION = "flightrec-source-partition"
DLQ_SOURCE_OFFSET = "flightrec-source-offset"
DLQ_ERROR_CLASS = "flightrec-error-class"
DLQ_ERROR_MESSAGE = "flightrec-error-message"
"""The error text, PII scrubbed."""
DLQ_ERROR_TIME = "flightrec-error-time"
DLQ_TRACE_ID = "flightrec-trace-id"
DLQ_ENCRYPTION = "flightrec-encryption"
"""How the value is encrypted at rest: ``AES-256-GCM;<key id>``."""
DLQ_ERROR_RULE = "flightrec-error-rule"
"""Only when a data-contract rule failed: its name."""
DLQ_ERROR_FIELD = "flightrec-error-field"
"""Only when a data-contract rule failed: the field it checks."""
DLQ_REDRIVEN_FROM = "flightrec-redriven-from"
"""On an input re-driven from a DLQ: the dead letter's ``topic:partition:offset``."""

DLQ_CONTEXT = (
    DLQ_SOURCE_TOPIC,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_OFFSET,
    DLQ_ERROR_CLASS,
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_TIME,
    DLQ_TRACE_ID,
    DLQ_ENCRYPTION,
)
"""The headers every dead-lettered input record carries."""

# -- records the ``DLQ`` data-contract rule action tees to its topic ----------
# Confluent's own names: a confluent deserializer reading the DLQ skips the rule
# named in ``__rule.name``.

RULE_NAME = "__rule.name"
RULE_MODE = "__rule.mode"
RULE_SUBJECT = "__rule.subject"
RULE_TOPIC = "__rule.topic"
RULE_EXCEPTION = "__rule.exception"
RULE_ERROR_CLASS = "error.class"
RULE_ERROR_FIELD = "error.field"
RULE_ERROR_TIME = "error.time"
RULE_CONTENT_TYPE = "content-type"

_HEX = frozenset("0123456789abcdef")


def traceparent(trace_id: str, span_id: str) -> bytes:
    """The value of a :data:`TRACEPARENT` header (sampled)."""
    return f"00-{trace_id}-{span_id}-01".encode("ascii")


def read_traceparent(headers: Iterable[tuple[str, bytes | None]] | None) -> str | None:
    """The first valid W3C ``traceparent`` header, normalised (lower case, no
    surrounding space), or None.

    Valid: four dash-separated parts, a two-digit version other than ``ff``, a
    non-zero 32-digit trace id, a non-zero 16-digit span id and two-digit flags.
    """
    for name, value in headers or ():
        if name.lower() != TRACEPARENT or value is None:
            continue
        parts = value.decode("ascii", "replace").strip().lower().split("-")
        if len(parts) != 4 or [len(p) for p in parts] != [2, 32, 16, 2]:
            continue
        version, trace_id, span_id, _ = parts
        if (
            _HEX.issuperset("".join(parts))
            and version != "ff"
            and trace_id != "0" * 32
            and span_id != "0" * 16
        ):
            return "-".join(parts)
    return None


def parse_traceparent(headers: Iterable[tuple[str, bytes | None]] | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of the first valid W3C ``traceparent`` header
    (:func:`read_traceparent`), if any."""
    text = read_traceparent(headers)
    if text is None:
        return None
    _, trace_id, span_id, _ = text.split("-")
    return trace_id, span_id


def header_value(
    headers: Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None,
    name: str,
) -> bytes | None:
    """The value of the first header called ``name``, or None.

    ``headers`` as clients hand them over: pairs (confluent-kafka's
    ``Message.headers()``), a mapping, or None.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    for key, value in items:
        if key == name and value is not None:
            return value.encode() if isinstance(value, str) else value
    return None
