"""Signed records: Ed25519 signatures over chain heads.

First the primitives (:class:`RecordSigner`, :class:`Keyring`), then a sealed
run and the forgeries an insider with the worker's broker credentials could
build with the project's own sealing code: each must be named by
``verify_signatures`` (or, where the chain sees it, by ``verify_chain``).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from flightrec.contracts.chain import (
    ChainSealer,
    canonical_text,
    event_hash,
    verify_chain,
    verify_signatures,
)
from flightrec.contracts.errors import ConfigError
from flightrec.contracts.events import CotEvent, CotEventBase, Decision, RunFailed, read_cot_event
from flightrec.contracts.signing import (
    CHECKPOINT_DOMAIN,
    SIGNATURE_DOMAIN,
    SIGNED_KINDS,
    Keyring,
    RecordSigner,
    key_id_of,
)
from flightrec.testing.memory import MemoryRecorder
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

HEAD = "ab" * 32
GOLDEN_DIR = Path(__file__).parents[1] / "replay" / "golden"


def keyring_of(*signers: RecordSigner) -> Keyring:
    return Keyring([s.public_key for s in signers])


def rsa_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ec_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# ---------------------------------------------------------------- primitives


def test_a_signed_head_verifies_with_the_signers_public_key(signer: RecordSigner) -> None:
    signed = signer.sign_head(HEAD)
    assert (signed.head, signed.key_id) == (HEAD, signer.key_id)
    assert keyring_of(signer).verify_head(HEAD, signed.signature, signer.key_id)
    # What is signed is the domain-separated head, not the bare hash.
    raw = base64.b64decode(signed.signature)
    signer.public_key.verify(raw, SIGNATURE_DOMAIN + HEAD.encode())


def test_another_keys_signature_does_not_verify(signer: RecordSigner, other: RecordSigner) -> None:
    keyring = keyring_of(signer, other)
    forged = other.sign_head(HEAD)
    # Made by a trusted key, but claimed for the signer's: the claim decides.
    assert not keyring.verify_head(HEAD, forged.signature, signer.key_id)
    assert keyring.verify_head(HEAD, forged.signature, other.key_id)


def test_a_signature_of_another_head_does_not_verify(signer: RecordSigner) -> None:
    signed = signer.sign_head(HEAD)
    assert not keyring_of(signer).verify_head("cd" * 32, signed.signature, signer.key_id)


@pytest.mark.parametrize(
    "signature",
    ["not base64 at all!", "", "AAAA", base64.b64encode(b"\x00" * 64).decode(), "QUJD\n"],
)
def test_a_garbage_signature_does_not_verify(signer: RecordSigner, signature: str) -> None:
    assert not keyring_of(signer).verify_head(HEAD, signature, signer.key_id)


def test_an_unknown_key_id_does_not_verify(signer: RecordSigner, other: RecordSigner) -> None:
    signed = other.sign_head(HEAD)
    keyring = keyring_of(signer)
    assert other.key_id not in keyring
    assert not keyring.verify_head(HEAD, signed.signature, other.key_id)
    assert not keyring.verify_head(HEAD, signed.signature, "")


PAYLOAD = b'{"heads":{},"writer":"w"}'


def test_signed_bytes_verify_with_the_signers_public_key_only(
    signer: RecordSigner, other: RecordSigner
) -> None:
    signature = signer.sign_bytes(PAYLOAD)
    keyring = keyring_of(signer, other)
    assert keyring.verify_bytes(PAYLOAD, signature, signer.key_id)
    signer.public_key.verify(base64.b64decode(signature), CHECKPOINT_DOMAIN + PAYLOAD)
    assert not keyring.verify_bytes(PAYLOAD + b" ", signature, signer.key_id)
    assert not keyring.verify_bytes(PAYLOAD, other.sign_bytes(PAYLOAD), signer.key_id)
    assert not keyring_of(other).verify_bytes(PAYLOAD, signature, signer.key_id)
    assert not keyring.verify_bytes(PAYLOAD, "not base64!", signer.key_id)


def test_a_head_signature_and_a_bytes_signature_never_stand_for_each_other(
    signer: RecordSigner,
) -> None:
    assert CHECKPOINT_DOMAIN != SIGNATURE_DOMAIN
    keyring = keyring_of(signer)
    head_signature = signer.sign_head(HEAD).signature
    assert not keyring.verify_bytes(HEAD.encode(), head_signature, signer.key_id)
    assert not keyring.verify_head(HEAD, signer.sign_bytes(HEAD.encode()), signer.key_id)


def test_the_key_id_is_16_hex_digits_and_stable(signer: RecordSigner, other: RecordSigner) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", signer.key_id)
    assert key_id_of(signer.public_key) == signer.key_id
    assert RecordSigner.from_pem(signer.private_pem()).key_id == signer.key_id
    assert other.key_id != signer.key_id
    keyring = Keyring()
    assert keyring.add_pem(signer.public_pem()) == signer.key_id
    assert keyring.key_ids() == [signer.key_id]


@pytest.mark.parametrize("make", [rsa_pem, ec_pem], ids=["rsa", "ec"])
def test_a_signing_key_that_is_not_ed25519_is_a_config_error(make: object) -> None:
    assert callable(make)
    with pytest.raises(ConfigError, match="Ed25519"):
        RecordSigner.from_pem(make())


@pytest.mark.parametrize(
    "pem",
    [
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"",
    ],
)
def test_a_signing_key_that_is_no_pem_key_is_a_config_error(pem: bytes) -> None:
    with pytest.raises(ConfigError):
        RecordSigner.from_pem(pem)


def test_an_encrypted_signing_key_is_a_config_error(signer: RecordSigner) -> None:
    key = serialization.load_pem_private_key(signer.private_pem(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ConfigError, match="unencrypted"):
        RecordSigner.from_pem(encrypted)


def test_a_missing_signing_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        RecordSigner.from_file(tmp_path / "absent.pem")
    assert raised.value.context["path"] == str(tmp_path / "absent.pem")


def test_a_keyring_reads_a_directory_of_pem_files(
    tmp_path: Path, signer: RecordSigner, other: RecordSigner
) -> None:
    (tmp_path / "a.pem").write_bytes(signer.public_pem())
    (tmp_path / "b.pem").write_bytes(other.public_pem())
    (tmp_path / "README.txt").write_text("not a key, and not a *.pem: ignored")
    keyring = Keyring.from_files([tmp_path])
    assert keyring.key_ids() == sorted([signer.key_id, other.key_id])
    assert keyring.verify_head(HEAD, other.sign_head(HEAD).signature, other.key_id)


def test_a_keyring_trusts_the_public_half_of_a_private_key_file(
    tmp_path: Path, signer: RecordSigner
) -> None:
    path = tmp_path / "signing.pem"
    path.write_bytes(signer.private_pem())
    keyring = Keyring.from_files([path])
    assert keyring.key_ids() == [signer.key_id]
    assert keyring.verify_head(HEAD, signer.sign_head(HEAD).signature, signer.key_id)


@pytest.mark.parametrize("content", ["junk", "rsa-public", "ec-private"])
def test_a_keyring_refuses_what_is_no_ed25519_key(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.pem"
    if content == "junk":
        path.write_bytes(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    elif content == "rsa-public":
        key = serialization.load_pem_private_key(rsa_pem(), password=None)
        path.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    else:
        path.write_bytes(ec_pem())
    with pytest.raises(ConfigError) as raised:
        Keyring.from_files([path])
    assert raised.value.context["source"] == str(path)


def test_a_keyring_names_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        Keyring.from_files([tmp_path / "absent.pem"])
    assert raised.value.context["path"] == str(tmp_path / "absent.pem")


# ------------------------------------------------------------ a sealed run


def sealed_run(sealer: ChainSealer, index: int = 1, **options: object) -> list[CotEvent]:
    return [
        sealer.seal(e)
        for e in synthetic_run(synthetic_trace_id(index), **options)  # type: ignore[arg-type]
    ]


def failed_run(sealer: ChainSealer) -> list[CotEvent]:
    """A run that ends with DECISION then RUN_FAILED (the runner's fallback)."""
    events = synthetic_run(synthetic_trace_id(3))
    completed = events.pop()
    failed = RunFailed.model_validate(
        {
            **completed.model_dump(include=set(CotEventBase.model_fields)),
            "error_type": "ModelError",
            "reason": "model process crashed",
        }
    )
    return [sealer.seal(e) for e in [*events, failed]]


def position(events: list[CotEvent], kind: str) -> int:
    return next(i for i, e in enumerate(events) if e.kind == kind)


def test_a_sealed_run_is_intact_and_signed(signer: RecordSigner) -> None:
    sealer = ChainSealer(signer)
    events = [*sealed_run(sealer), *failed_run(sealer)]
    assert verify_chain(events).ok
    report = verify_signatures(events, keyring_of(signer))
    assert report.ok, report.describe()
    assert report.detail == "4 signature(s) verified"


def test_only_the_decision_and_the_end_are_signed(signer: RecordSigner) -> None:
    sealer = ChainSealer(signer)
    events = [*sealed_run(sealer), *failed_run(sealer)]
    signed = [e.kind for e in events if e.signature is not None]
    assert signed == ["DECISION", "RUN_COMPLETED", "DECISION", "RUN_FAILED"]
    for event in events:
        if event.kind in SIGNED_KINDS:
            assert event.signing_key_id == signer.key_id
        else:
            assert (event.signing_key_id, event.signature) == (None, None)


def test_the_signature_signs_the_events_chain_hash(signer: RecordSigner) -> None:
    sealer = ChainSealer(signer)
    events = sealed_run(sealer)
    decision = events[position(events, "DECISION")]
    assert decision.signature is not None
    assert keyring_of(signer).verify_head(event_hash(decision), decision.signature, signer.key_id)
    # The key id is part of what is hashed (and so signed); the signature is not.
    canonical = json.loads(canonical_text(decision))
    assert canonical["signing_key_id"] == signer.key_id
    assert "signature" not in canonical
    unsigned = decision.model_copy(update={"signature": None})
    assert event_hash(unsigned) == event_hash(decision)


def test_the_sealer_keeps_the_last_signed_head_of_each_run(signer: RecordSigner) -> None:
    sealer = ChainSealer(signer)
    trace = synthetic_trace_id(1)
    events = synthetic_run(trace)
    sealed: list[CotEvent] = []
    for event in events[:-1]:
        sealed.append(sealer.seal(event))
        if event.kind != "DECISION":
            assert sealer.last_signed(trace, 1) is None
    at_decision = sealer.last_signed(trace, 1)
    assert at_decision is not None
    assert at_decision.head == event_hash(sealed[-1]) == sealer.head(trace, 1)
    assert at_decision.signature == sealed[-1].signature
    assert at_decision.key_id == signer.key_id
    end = sealer.seal(events[-1])
    # Ed25519 signatures are deterministic: the same head, the same signature.
    ended = signer.sign_head(event_hash(end))
    assert sealer.last_signed(trace, 1) == ended
    # The end sealed but never written (the recorder refused it): its signed
    # head must not be handed out as the run's.
    sealer.restore(trace, 1, at_decision.head)
    assert sealer.last_signed(trace, 1) in (None, at_decision)
    assert sealer.head(trace, 1) == at_decision.head
    sealer.forget(trace, 1)
    assert sealer.last_signed(trace, 1) is None


def test_a_sealer_without_a_key_signs_nothing() -> None:
    events = sealed_run(ChainSealer())
    assert all(e.signature is None and e.signing_key_id is None for e in events)
    assert verify_chain(events).ok


# -------------------------------------------------------------- forgeries


def flip(decision: CotEvent) -> CotEvent:
    assert isinstance(decision, Decision) and decision.outcome == "APPROVE"
    return decision.model_copy(update={"outcome": "DECLINE"})


def resealed(events: list[CotEvent], sealer: ChainSealer, clear: bool = True) -> list[CotEvent]:
    """``events`` sealed again from genesis, as a forger rewriting a record would."""
    fresh = [
        e.model_copy(update={"signing_key_id": None, "signature": None}) if clear else e
        for e in events
    ]
    return [sealer.seal(e) for e in fresh]


def test_a_record_resealed_without_a_key_reads_unsigned(signer: RecordSigner) -> None:
    events = sealed_run(ChainSealer(signer))
    at = position(events, "DECISION")
    events[at] = flip(events[at])
    forged = resealed(events, ChainSealer())

    assert verify_chain(forged).ok  # the forger's chain is a good chain ...
    report = verify_signatures(forged, keyring_of(signer))  # ... but nobody signed it
    assert (report.ok, report.problem, report.seq) == (False, "unsigned", events[at].seq)
    assert report.event_id == events[at].event_id and report.index == at
    assert "DECISION carries no signature" in report.detail


def test_a_record_resealed_keeping_the_old_signatures_is_a_forged_attempt(
    signer: RecordSigner,
) -> None:
    events = sealed_run(ChainSealer(signer))
    at = position(events, "DECISION")
    events[at] = flip(events[at])
    forged = resealed(events, ChainSealer(), clear=False)

    assert verify_chain(forged).ok
    report = verify_signatures(forged, keyring_of(signer))
    assert (report.ok, report.problem, report.seq) == (False, "forged attempt", events[at].seq)
    assert "does not match its content" in report.detail


def test_a_record_resealed_with_another_key_is_a_forged_attempt(
    signer: RecordSigner, other: RecordSigner
) -> None:
    events = sealed_run(ChainSealer(signer))
    at = position(events, "DECISION")
    events[at] = flip(events[at])
    forged = resealed(events, ChainSealer(other))

    assert verify_chain(forged).ok
    assert verify_signatures(forged, keyring_of(other)).ok  # signed, by the forger's key
    report = verify_signatures(forged, keyring_of(signer))
    assert (report.ok, report.problem, report.seq) == (False, "forged attempt", events[at].seq)
    assert other.key_id in report.detail and "not trusted" in report.detail


def test_another_keys_signature_under_the_trusted_key_id_is_a_forged_attempt(
    signer: RecordSigner, other: RecordSigner
) -> None:
    """The forger claims the trusted key's id: the chain (which covers the id)
    is resealed, and the signature made with the other key fails."""
    events = sealed_run(ChainSealer(signer))
    at = position(events, "DECISION")
    events[at] = flip(events[at])
    sealer = ChainSealer()
    forged: list[CotEvent] = []
    for event in events:
        claim = signer.key_id if event.kind in SIGNED_KINDS else None
        sealed = sealer.seal(event.model_copy(update={"signing_key_id": claim, "signature": None}))
        if claim is not None:
            sealed = sealed.model_copy(
                update={"signature": other.sign_head(event_hash(sealed)).signature}
            )
        forged.append(sealed)

    assert verify_chain(forged).ok
    report = verify_signatures(forged, keyring_of(signer, other))
    assert (report.ok, report.problem, report.index) == (False, "forged attempt", at)


def test_a_signed_decision_changed_in_place_breaks_the_chain(signer: RecordSigner) -> None:
    events = sealed_run(ChainSealer(signer))
    at = position(events, "DECISION")
    original = events[at]
    assert isinstance(original, Decision)
    events[at] = original.model_copy(update={"reasons": ["the applicant is a friend"]})

    chain = verify_chain(events)
    assert (chain.ok, chain.problem, chain.seq) == (False, "modified", original.seq)
    report = verify_signatures(events, keyring_of(signer))
    assert (report.ok, report.problem, report.seq) == (False, "forged attempt", original.seq)


def test_a_signed_end_changed_in_place_is_a_forged_attempt(signer: RecordSigner) -> None:
    """The last event has no successor whose link would break: the chain alone
    cannot see the change, the signature does."""
    events = sealed_run(ChainSealer(signer))
    end = events[-1]
    assert end.kind == "RUN_COMPLETED"
    events[-1] = end.model_copy(update={"outcome": "DECLINE"})

    assert verify_chain(events).ok
    report = verify_signatures(events, keyring_of(signer))
    assert (report.ok, report.problem, report.seq) == (False, "forged attempt", end.seq)


@pytest.mark.parametrize("also_key_id", [False, True])
def test_a_stripped_signature_reads_unsigned(signer: RecordSigner, also_key_id: bool) -> None:
    events = sealed_run(ChainSealer(signer))
    update: dict[str, object] = {"signature": None}
    if also_key_id:
        update["signing_key_id"] = None
    events[-1] = events[-1].model_copy(update=update)

    assert verify_chain(events).ok  # the signature is no part of the hash
    report = verify_signatures(events, keyring_of(signer))
    assert (report.ok, report.problem, report.index) == (False, "unsigned", len(events) - 1)


def test_a_signature_on_an_unsigned_kind_is_checked_too(signer: RecordSigner) -> None:
    events = sealed_run(ChainSealer(signer))
    events[2] = events[2].model_copy(
        update={"signing_key_id": signer.key_id, "signature": signer.sign_head(HEAD).signature}
    )
    report = verify_signatures(events, keyring_of(signer))
    assert (report.ok, report.problem, report.index) == (False, "forged attempt", 2)


def test_the_first_problem_across_attempts_is_reported(signer: RecordSigner) -> None:
    good = sealed_run(ChainSealer(signer), 1)
    bad = sealed_run(ChainSealer(), 2)
    report = verify_signatures([*good, *bad], keyring_of(signer))
    assert (report.ok, report.problem, report.trace_id) == (False, "unsigned", bad[0].trace_id)


# ----------------------------------------------------------- old records


def test_an_unsigned_event_hashes_without_the_signing_fields() -> None:
    event = sealed_run(ChainSealer())[3]
    canonical = json.loads(canonical_text(event))
    assert "signature" not in canonical and "signing_key_id" not in canonical
    # Exactly the canonical form from before the fields existed: the dump
    # without defaults, plus kind and prev_hash.
    before = event.model_dump(mode="json", exclude_defaults=True)
    before.update(kind=event.kind, prev_hash=event.prev_hash)
    assert canonical == before


@pytest.mark.parametrize("name", ["loan_standard", "loan_faults"])
def test_records_sealed_before_signing_still_verify(name: str, signer: RecordSigner) -> None:
    lines = (GOLDEN_DIR / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    events = [read_cot_event(line) for line in lines if line.strip()]
    assert events and all(e.signature is None for e in events)
    assert verify_chain(events).ok
    # Their chain holds; they are unsigned, and say so.
    report = verify_signatures(events, keyring_of(signer))
    assert (report.ok, report.problem) == (False, "unsigned")


# --------------------------------------------------------- the memory recorder


async def test_the_memory_recorder_signs_with_its_own_key_or_the_one_given(
    signer: RecordSigner,
) -> None:
    fresh, again, given = MemoryRecorder(), MemoryRecorder(), MemoryRecorder(signer)
    assert fresh.signer.key_id != again.signer.key_id  # a fresh key each
    assert given.signer is signer and given.keyring.key_ids() == [signer.key_id]

    trace = synthetic_trace_id(1)
    for event in synthetic_run(trace)[:-1]:
        await given.emit(event)
    decision = given.events[-1]
    assert decision.kind == "DECISION" and decision.signing_key_id == signer.key_id
    assert given.signed_head(trace, 1) == signer.sign_head(event_hash(decision))
    assert fresh.signed_head(trace, 1) is None  # nothing of that run emitted there
    await given.emit(synthetic_run(trace)[-1])
    assert verify_signatures(given.events, given.keyring).ok
    assert not verify_signatures(given.events, fresh.keyring).ok
