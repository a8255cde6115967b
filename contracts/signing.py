"""Signing a run's record: Ed25519 signatures over chain heads.

The hash chain (:mod:`flightrec.contracts.chain`) shows that a record was not
changed after it was sealed, but anyone able to produce to the CoT topic can
seal a record of their own with the same code. A signature made with a key that
is not a Kafka credential closes that gap: an insider with the worker's broker
credentials can append events, but not sign them (docs/design.md, "Signed and
anchored records").

What is signed: the recorder signs the ``DECISION`` event and the terminal
event of every attempt (:data:`SIGNED_KINDS`). The signature covers the
event's chain hash (:func:`~flightrec.contracts.chain.event_hash`), which
covers the event's whole content, its ``prev_hash`` (so every event before it)
and the ``signing_key_id``; the ``signature`` field itself is left out of the
canonical form it signs. The message is :data:`SIGNATURE_DOMAIN` followed by
the hex hash, so a signature over a chain head can never be taken for one over
anything else. The recorder's checkpoints of the log (``contracts/checkpoint.py``)
are signed with the same key over :data:`CHECKPOINT_DOMAIN` followed by their
canonical JSON (:meth:`RecordSigner.sign_bytes`): a checkpoint's signature is
never a chain head's, nor the other way round.

Keys: a :class:`RecordSigner` holds the private key (PEM, PKCS#8, unencrypted;
from a file or a setting); its ``key_id`` is the first 16 hex digits of the
SHA-256 of the raw public key, recorded on every signed event. A
:class:`Keyring` holds the public keys verifiers trust, by id: rotating a key
means adding the new public key to every verifier's keyring, switching the
worker to the new private key, and keeping the old public key in the keyring
for as long as its records are kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from flightrec.contracts.errors import ConfigError

__all__ = [
    "CHECKPOINT_DOMAIN",
    "SIGNATURE_DOMAIN",
    "SIGNED_KINDS",
    "Keyring",
    "RecordSigner",
    "SignedHead",
    "key_id_of",
]

SIGNATURE_DOMAIN = b"flightrec.cot.head.v1\n"
"""Prefix of every signed chain head (domain separation)."""

CHECKPOINT_DOMAIN = b"flightrec.cot.checkpoint.v1\n"
"""Prefix of every signed checkpoint payload (:meth:`RecordSigner.sign_bytes`)."""

SIGNED_KINDS: frozenset[str] = frozenset({"DECISION", "RUN_COMPLETED", "RUN_FAILED"})
"""The kinds the recorder signs: the decision and the event that ends an attempt."""


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """The id of a public key: 16 hex digits of the SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _message(head: str) -> bytes:
    return SIGNATURE_DOMAIN + head.encode("ascii")


@dataclass(frozen=True)
class SignedHead:
    """A signed chain head: what a published decision carries of its record."""

    head: str
    signature: str
    key_id: str


class RecordSigner:
    """Signs chain heads with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def generate(cls) -> RecordSigner:
        """A signer with a fresh key (development and tests)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes, source: str = "the signing key") -> RecordSigner:
        """A signer from an unencrypted PKCS#8 PEM Ed25519 private key."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "the signing key is not an unencrypted PEM private key", source=source
            ) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(
                "the signing key must be an Ed25519 key",
                source=source,
                key_type=type(key).__name__,
            )
        return cls(key)

    @classmethod
    def from_file(cls, path: Path) -> RecordSigner:
        """A signer from a PEM file (:meth:`from_pem`)."""
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError("cannot read the signing key", path=str(path)) from exc
        return cls.from_pem(pem, source=str(path))

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (to store a generated key)."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM (what verifiers trust)."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign_head(self, head: str) -> SignedHead:
        """The signature of chain head ``head`` (hex SHA-256), base64-encoded."""
        return SignedHead(head=head, signature=self._sign(_message(head)), key_id=self.key_id)

    def sign_bytes(self, data: bytes) -> str:
        """The base64 signature of a checkpoint payload ``data`` (its canonical
        JSON), made over :data:`CHECKPOINT_DOMAIN` followed by ``data``."""
        return self._sign(CHECKPOINT_DOMAIN + data)

    def _sign(self, message: bytes) -> str:
        return base64.b64encode(self._key.sign(message)).decode("ascii")


class Keyring:
    """The public keys a verifier trusts, by key id."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: Ed25519PublicKey) -> str:
        """Trust ``key``; returns its id."""
        key_id = key_id_of(key)
        self._keys[key_id] = key
        return key_id

    def add_pem(self, pem: bytes, source: str = "a public key") -> str:
        """Trust a PEM public key (or the public half of a PEM private key)."""
        try:
            if b"PRIVATE KEY" in pem:
                private = serialization.load_pem_private_key(pem, password=None)
                key: object = private.public_key()
            else:
                key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise ConfigError("not a PEM key", source=source) from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError("a verifying key must be an Ed25519 key", source=source)
        return self.add(key)

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> Keyring:
        """A keyring of the PEM keys in ``paths`` (files, or directories of ``*.pem``)."""
        keyring = cls()
        for path in _pem_files(paths):
            try:
                pem = path.read_bytes()
            except OSError as exc:
                raise ConfigError("cannot read a verifying key", path=str(path)) from exc
            keyring.add_pem(pem, source=str(path))
        return keyring

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def key_ids(self) -> list[str]:
        """The ids of the trusted keys, sorted."""
        return sorted(self._keys)

    def verify_head(self, head: str, signature: str, key_id: str) -> bool:
        """Whether ``signature`` is a trusted key's signature of chain head ``head``."""
        return self._verify(_message(head), signature, key_id)

    def verify_bytes(self, data: bytes, signature: str, key_id: str) -> bool:
        """Whether ``signature`` is a trusted key's signature of checkpoint payload
        ``data`` (:meth:`RecordSigner.sign_bytes`)."""
        return self._verify(CHECKPOINT_DOMAIN + data, signature, key_id)

    def _verify(self, message: bytes, signature: str, key_id: str) -> bool:
        key = self._keys.get(key_id)
        if key is None:
            return False
        try:
            raw = base64.b64decode(signature, validate=True)
            key.verify(raw, message)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def _pem_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(path.glob("*.pem"))
        else:
            yield path
