"""Encryption of dead-letter payloads.

A poison input can be a well-formed application that broke a rule, so its bytes
may hold personal data in clear. The DLQ keeps the original bytes (so an
operator can repair and re-submit them) but encrypted with AES-256-GCM under a
data key derived (HKDF-SHA256) from a PII key of the
:class:`~flightrec.contracts.pii_keys.PiiKeyring`: new payloads under the
active key, whose id the DLQ record's encryption header carries
(``AES-256-GCM;<key id>``). Decryption takes the key id from that header, so
records written before a rotation stay readable while their key is in the ring.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flightrec.contracts.errors import ConfigError
from flightrec.contracts.pii_keys import PiiKeyring, load_pii_keyring
from flightrec.contracts.settings import Settings

__all__ = ["ALGORITHM", "DlqCipher", "encryption_key_id"]

ALGORITHM = "AES-256-GCM"
_NONCE_BYTES = 12


def encryption_key_id(header: bytes | str) -> str:
    """The key id of a DLQ encryption header (``AES-256-GCM;<key id>``);
    :class:`ConfigError` when the header names another algorithm or no key."""
    text = header.decode("utf-8", "replace") if isinstance(header, bytes) else header
    algorithm, _, key_id = text.partition(";")
    if algorithm != ALGORITHM or not key_id:
        raise ConfigError(
            f"not a DLQ encryption header: expected '{ALGORITHM};<key id>'", header=text
        )
    return key_id


class DlqCipher:
    """Encrypts and decrypts DLQ payloads; ``nonce || ciphertext+tag``.

    ``keyring`` holds the PII keys, by default the ring ``settings`` configure.
    """

    def __init__(self, settings: Settings, keyring: PiiKeyring | None = None) -> None:
        self._keyring = keyring if keyring is not None else load_pii_keyring(settings)
        self._aeads: dict[str, AESGCM] = {}

    @property
    def algorithm(self) -> str:
        """:data:`ALGORITHM`, for the DLQ record's encryption header."""
        return ALGORITHM

    @property
    def key_id(self) -> str:
        """The id of the key :meth:`encrypt` uses, for the encryption header."""
        return self._keyring.active_id

    def _aead(self, key_id: str) -> AESGCM:
        aead = self._aeads.get(key_id)
        if aead is None:
            secret = self._keyring.secret(key_id)  # ConfigError for an unknown id
            key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"flightrec-dlq"
            ).derive(secret)
            aead = self._aeads[key_id] = AESGCM(key)
        return aead

    def encrypt(self, plaintext: bytes, associated: bytes = b"") -> bytes:
        """``plaintext`` encrypted under the active key (:attr:`key_id`)."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead(self.key_id).encrypt(nonce, plaintext, associated)

    def decrypt(
        self, payload: bytes, associated: bytes = b"", *, header: bytes | str | None = None
    ) -> bytes:
        """The plaintext of ``payload``, under the key the record's encryption
        ``header`` names (the active key without one).

        Raises :class:`ConfigError` when the header is malformed, the ring does
        not hold its key id, or that key does not open the payload.
        """
        key_id = self.key_id if header is None else encryption_key_id(header)
        aead = self._aead(key_id)
        nonce, body = payload[:_NONCE_BYTES], payload[_NONCE_BYTES:]
        try:
            return aead.decrypt(nonce, body, associated)
        except InvalidTag:
            raise ConfigError(
                "the DLQ payload does not decrypt under its key id: the ring holds "
                "another secret under that id, or the record was altered",
                key_id=key_id,
            ) from None
