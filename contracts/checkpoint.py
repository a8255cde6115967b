"""Checkpoints of the CoT log: signed chain heads per partition, to keep outside Kafka.

The chain and the signatures of each attempt show that what a run recorded was
not changed; they cannot show that the log still holds it at all, nor that a
partition was not cut short and written again. A checkpoint can: the recorder
writes, every ``checkpoint_interval_s``, the last event of each CoT partition
it wrote that the broker confirmed (offset, trace id, attempt, ``seq`` and
that event's chain hash), signed with the worker's key, to the checkpoint
topic (docs/design.md, "Checkpoints of the log"). Exported to storage outside
Kafka, it lets an auditor check later that the event at that offset is still
the one with that hash.

Wire form: canonical JSON (:func:`~flightrec.contracts.events.canonical_json`)
of ``{"writer", "ts", "heads": {partition: {offset, trace_id, attempt, seq,
head}}, "key_id", "signature"}``. The signature is the key's signature
(:meth:`~flightrec.contracts.signing.RecordSigner.sign_bytes`) of the
canonical JSON of everything else. A verifier checks it over the record as
written (:func:`signature_problem`), never over a re-serialised model, so no
change in how a field is shown can break an old checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from flightrec.contracts.chain import event_hash
from flightrec.contracts.errors import DecodeError
from flightrec.contracts.events import CotEventBase, canonical_json
from flightrec.contracts.signing import Keyring, RecordSigner

__all__ = [
    "Checkpoint",
    "CheckpointHead",
    "head_problem",
    "parse_checkpoint",
    "read_checkpoint",
    "signature_problem",
    "signed_payload",
]


class CheckpointHead(BaseModel):
    """The last confirmed event of one CoT partition: where it is and its chain hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offset: int
    trace_id: str
    attempt: int
    seq: int
    head: str


class Checkpoint(BaseModel):
    """One signed checkpoint: per partition (``heads``), the writer's last confirmed event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    writer: str
    ts: datetime
    heads: dict[int, CheckpointHead]
    key_id: str
    signature: str

    @classmethod
    def signed(
        cls,
        writer: str,
        heads: Mapping[int, CheckpointHead],
        signer: RecordSigner,
        ts: datetime | None = None,
    ) -> Checkpoint:
        """A checkpoint of ``heads`` by ``writer``, signed by ``signer`` (now, by default)."""
        unsigned = cls(
            writer=writer,
            ts=ts if ts is not None else datetime.now(UTC),
            heads=dict(heads),
            key_id=signer.key_id,
            signature="",
        )
        signature = signer.sign_bytes(signed_payload(unsigned.record()))
        return unsigned.model_copy(update={"signature": signature})

    def record(self) -> dict[str, Any]:
        """The checkpoint as its JSON object (partitions as text keys)."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data

    def encode(self) -> bytes:
        """The record's bytes: canonical JSON of :meth:`record`."""
        return canonical_json(self.record()).encode("utf-8")


def signed_payload(record: Mapping[str, Any]) -> bytes:
    """What a checkpoint's signature signs: canonical JSON of its record without ``signature``."""
    unsigned = {name: value for name, value in record.items() if name != "signature"}
    return canonical_json(unsigned).encode("utf-8")


def parse_checkpoint(data: bytes | str) -> tuple[dict[str, Any], Checkpoint]:
    """The JSON object of a checkpoint record and its checked form.

    Raises :class:`DecodeError` for text that is no checkpoint.
    """
    try:
        record = json.loads(data)
    except ValueError as exc:
        raise DecodeError("a checkpoint is not JSON", error=str(exc)) from exc
    return record, read_checkpoint(record)


def read_checkpoint(record: object) -> Checkpoint:
    """The checked form of a checkpoint's JSON object; :class:`DecodeError` if it is none."""
    if not isinstance(record, dict):
        raise DecodeError("a checkpoint is not a JSON object")
    try:
        return Checkpoint.model_validate(record)
    except ValidationError as exc:
        raise DecodeError("not a checkpoint", error=str(exc)) from exc


def signature_problem(record: Mapping[str, Any], keyring: Keyring) -> str | None:
    """Why the checkpoint ``record`` (as written) is not signed by a trusted key; None if it is."""
    key_id = record.get("key_id")
    signature = record.get("signature")
    if not isinstance(key_id, str) or not isinstance(signature, str):
        return "no signature"
    if key_id not in keyring:
        return f"signed by a key that is not trusted ({key_id})"
    if not keyring.verify_bytes(signed_payload(record), signature, key_id):
        return "the signature does not match the checkpoint (changed after signing)"
    return None


def head_problem(partition: int, expected: CheckpointHead, found: CotEventBase) -> str | None:
    """How the event ``found`` at the checkpointed offset differs from ``expected``; None if
    it is the event that was checkpointed (same run, ``seq`` and chain hash)."""
    where = f"partition {partition} offset {expected.offset}"
    if (found.trace_id, found.attempt, found.seq) != (
        expected.trace_id,
        expected.attempt,
        expected.seq,
    ):
        return (
            f"{where} holds {found.trace_id} attempt {found.attempt} seq {found.seq}, "
            f"not {expected.trace_id} attempt {expected.attempt} seq {expected.seq}"
        )
    actual = event_hash(found)
    if actual != expected.head:
        return f"{where}: chain hash {actual} is not the checkpointed {expected.head}"
    return None
