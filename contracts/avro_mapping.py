"""Pydantic models <-> Avro datums (the dicts fastavro writes and reads).

The CoT schema holds every kind in one record: the envelope fields, ``kind``,
and one nullable payload field per kind (``decision`` for ``DECISION``...), of
which exactly the one named after the kind is set. Nullable payload fields
rather than a union of records: a ``["null", Record]`` union is resolved by a
``None`` check, whereas a union of eight records makes the writer try branches,
and CEL rules can address ``message.decision.reasons`` directly.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flightrec.contracts.events import (
    COT_KINDS,
    CotEvent,
    CotEventBase,
    Decision,
    LoanApplication,
    LoanDecision,
    ModelCall,
    ReplayResult,
    RunCompleted,
    RunFailed,
    RunStarted,
    Thought,
    ToolCall,
    ToolResult,
    read_cot_event,
)

__all__ = [
    "COT_KIND_MODELS",
    "ENVELOPE_FIELDS",
    "application_from_avro",
    "application_to_avro",
    "cot_from_avro",
    "cot_to_avro",
    "decision_from_avro",
    "decision_to_avro",
    "replay_from_avro",
    "replay_to_avro",
]

COT_KIND_MODELS: Mapping[str, type[CotEventBase]] = types.MappingProxyType(
    {
        "RUN_STARTED": RunStarted,
        "MODEL_CALL": ModelCall,
        "THOUGHT": Thought,
        "TOOL_CALL": ToolCall,
        "TOOL_RESULT": ToolResult,
        "DECISION": Decision,
        "RUN_FAILED": RunFailed,
        "RUN_COMPLETED": RunCompleted,
    }
)
"""The model of each CoT kind."""

ENVELOPE_FIELDS: frozenset[str] = frozenset(CotEventBase.model_fields)
"""Fields every CoT event carries at the top level of the Avro record."""

_PAYLOAD_FIELDS: Mapping[str, str] = types.MappingProxyType({k: k.lower() for k in COT_KINDS})
# The payload fields of each kind, precomputed: encoding is on the recorder's hot path.
_KIND_FIELDS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        kind: tuple(n for n in model.model_fields if n not in ENVELOPE_FIELDS and n != "kind")
        for kind, model in COT_KIND_MODELS.items()
    }
)


# Kinds whose outcome is an agent's label: a string field (``outcome_label``)
# since agents declare their own labels; the Avro enum ``outcome`` of the
# loan-only schema is kept, nullable, so records written under it still read
# (docs/design.md, Event model).
_LABELLED_KINDS = frozenset({"DECISION", "RUN_COMPLETED"})

# ------------------------------------------------------------------------ CoT


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_micros(value: datetime) -> int:
    """Microseconds since the epoch, exactly (integer arithmetic, no float)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def cot_to_avro(event: CotEventBase) -> dict[str, Any]:
    """The Avro datum of a CoT event.

    ``ts`` is given as the long that ``timestamp-micros`` stores: fastavro
    converts an aware ``datetime`` at about half its whole-record write speed,
    and this runs for every event the recorder writes. Readers still get a
    ``datetime`` (the logical type), and :func:`cot_from_avro` takes either.
    """
    data = event.model_dump()
    data["ts"] = _epoch_micros(data["ts"])
    kind: str = data["kind"]
    payload = {name: data.pop(name) for name in _KIND_FIELDS[kind]}
    if kind in _LABELLED_KINDS:
        # The label goes to the string field; the legacy enum field (loan
        # labels only) stays null in what is written today.
        payload["outcome_label"] = payload.pop("outcome")
        payload["outcome"] = None
    for field in _PAYLOAD_FIELDS.values():
        data[field] = None
    data[_PAYLOAD_FIELDS[kind]] = payload
    return data


def cot_from_avro(datum: Mapping[str, Any]) -> CotEvent:
    """The CoT event of an Avro datum (validated: a bad datum raises ``ValidationError``)."""
    kind = datum["kind"]
    data = {name: datum[name] for name in ENVELOPE_FIELDS if name in datum}
    ts = data.get("ts")
    if isinstance(ts, int):
        data["ts"] = _EPOCH + timedelta(microseconds=ts)
    payload = dict(datum.get(_PAYLOAD_FIELDS[kind]) or {})
    if kind in _LABELLED_KINDS:
        # Written today: outcome_label. Recorded under the loan-only schema: the enum.
        label = payload.pop("outcome_label", None)
        if label is not None:
            payload["outcome"] = label
    data.update(payload)
    data["kind"] = kind
    return read_cot_event(data)


# ------------------------------------------------------------------ business


def application_to_avro(application: LoanApplication) -> dict[str, Any]:
    """The Avro datum of a loan application."""
    return application.model_dump()


def application_from_avro(datum: Mapping[str, Any]) -> LoanApplication:
    """The loan application of an Avro datum."""
    return LoanApplication.model_validate(dict(datum))


def decision_to_avro(decision: LoanDecision) -> dict[str, Any]:
    """The Avro datum of a loan decision."""
    return decision.model_dump()


def decision_from_avro(datum: Mapping[str, Any]) -> LoanDecision:
    """The loan decision of an Avro datum."""
    return LoanDecision.model_validate(dict(datum))


def replay_to_avro(result: ReplayResult) -> dict[str, Any]:
    """The Avro datum of a replay result (labels in the ``*_outcome_label`` fields,
    the legacy enum fields null, as for CoT decisions)."""
    data = result.model_dump()
    for side in ("old", "new"):
        data[f"{side}_outcome_label"] = data[f"{side}_outcome"]
        data[f"{side}_outcome"] = None
    return data


def replay_from_avro(datum: Mapping[str, Any]) -> ReplayResult:
    """The replay result of an Avro datum (written with labels, or with the legacy enum)."""
    data = dict(datum)
    for side in ("old", "new"):
        label = data.pop(f"{side}_outcome_label", None)
        if label is not None:
            data[f"{side}_outcome"] = label
    return ReplayResult.model_validate(data)


# --------------------------------------------------------------------- drift
