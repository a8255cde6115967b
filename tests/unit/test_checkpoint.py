"""Checkpoints of the CoT log (``contracts/checkpoint.py``): a checkpoint verifies
with its writer's key as written, and any change to it, another key's signature
or an untrusted key is named; a checkpointed head is matched against the event
the log holds at its offset."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from flightrec.contracts.chain import ChainSealer, event_hash
from flightrec.contracts.checkpoint import (
    Checkpoint,
    CheckpointHead,
    head_problem,
    parse_checkpoint,
    signature_problem,
)
from flightrec.contracts.errors import DecodeError
from flightrec.contracts.events import canonical_json
from flightrec.contracts.signing import Keyring, RecordSigner
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

TS = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def heads() -> dict[int, CheckpointHead]:
    return {
        0: CheckpointHead(offset=41, trace_id="a" * 32, attempt=1, seq=7, head="ab" * 32),
        3: CheckpointHead(offset=9, trace_id="b" * 32, attempt=2, seq=0, head="cd" * 32),
    }


def written(signer: RecordSigner) -> dict[str, object]:
    """A checkpoint's record as a verifier reads it back (JSON parsed)."""
    record: dict[str, object] = json.loads(
        Checkpoint.signed("worker-1", heads(), signer, TS).encode()
    )
    return record


def test_a_checkpoint_is_canonical_json_and_reads_back_as_written(signer: RecordSigner) -> None:
    checkpoint = Checkpoint.signed("worker-1", heads(), signer, TS)
    data = checkpoint.encode()
    record, parsed = parse_checkpoint(data)
    assert canonical_json(record).encode() == data
    assert parsed == checkpoint
    assert set(record) == {"writer", "ts", "heads", "key_id", "signature"}
    assert record["heads"] == {
        "0": {"offset": 41, "trace_id": "a" * 32, "attempt": 1, "seq": 7, "head": "ab" * 32},
        "3": {"offset": 9, "trace_id": "b" * 32, "attempt": 2, "seq": 0, "head": "cd" * 32},
    }
    assert (record["writer"], record["key_id"]) == ("worker-1", signer.key_id)


def test_a_checkpoint_verifies_with_its_writers_key(
    signer: RecordSigner, other: RecordSigner
) -> None:
    assert (
        signature_problem(written(signer), Keyring([signer.public_key, other.public_key])) is None
    )


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("heads", lambda h: {**h, "0": {**h["0"], "head": "ef" * 32}}),
        ("heads", lambda h: {**h, "0": {**h["0"], "offset": 40}}),
        ("heads", lambda h: {"3": h["3"]}),  # a partition left out
        ("writer", lambda _: "worker-2"),
        ("ts", lambda _: "2025-03-02T12:00:00Z"),
    ],
)
def test_a_changed_checkpoint_no_longer_verifies(
    signer: RecordSigner, field: str, change: object
) -> None:
    record = written(signer)
    record[field] = change(record[field])  # type: ignore[operator]
    problem = signature_problem(record, Keyring([signer.public_key]))
    assert problem == "the signature does not match the checkpoint (changed after signing)"


def test_another_keys_signature_under_the_writers_key_id_does_not_verify(
    signer: RecordSigner, other: RecordSigner
) -> None:
    forged = written(other)
    forged["key_id"] = signer.key_id
    problem = signature_problem(forged, Keyring([signer.public_key, other.public_key]))
    assert problem is not None and "changed after signing" in problem


def test_a_checkpoint_signed_by_an_untrusted_key_is_named(
    signer: RecordSigner, other: RecordSigner
) -> None:
    problem = signature_problem(written(other), Keyring([signer.public_key]))
    assert problem == f"signed by a key that is not trusted ({other.key_id})"


def test_a_checkpoint_without_a_signature_is_named(signer: RecordSigner) -> None:
    record = written(signer)
    del record["signature"]
    assert signature_problem(record, Keyring([signer.public_key])) == "no signature"


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[1, 2]", b'{"writer": "w"}', b'{"writer": "w", "extra": 1}'],
)
def test_what_is_no_checkpoint_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_checkpoint(data)


def test_a_checkpointed_head_matches_only_the_event_it_names() -> None:
    sealer = ChainSealer()
    events = [sealer.seal(e) for e in synthetic_run(synthetic_trace_id(1, "checkpoint"))]
    last = events[-1]
    expected = CheckpointHead(
        offset=12, trace_id=last.trace_id, attempt=last.attempt, seq=last.seq, head=event_hash(last)
    )
    assert head_problem(2, expected, last) is None
    # Another event at that offset: the log was rewritten or cut short there.
    earlier = head_problem(2, expected, events[-2])
    assert earlier is not None and earlier.startswith("partition 2 offset 12 holds")
    # The same run and seq, but not the content that was checkpointed.
    changed = last.model_copy(update={"agent_version": "forged"})
    problem = head_problem(2, expected, changed)
    assert problem == (
        f"partition 2 offset 12: chain hash {event_hash(changed)} is not the checkpointed "
        f"{expected.head}"
    )
