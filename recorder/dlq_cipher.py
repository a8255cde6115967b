"""Encryption of dead-letter payloads.

A poison input can be a well-formed application that broke a rule, so its bytes
may hold personal data in clear. The DLQ keeps the original bytes (so an
operator can repair and re-submit them) but encrypted with AES-256-GCM under a
key derived (HKDF-SHA256) from the PII key in ``Settings``; only key holders can
read them back. The key id travels in a header so keys can be rotated: keep old
keys around to read old DLQ records.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flightrec.contracts.settings import Settings

__all__ = ["ALGORITHM", "DlqCipher"]

ALGORITHM = "AES-256-GCM"
_NONCE_BYTES = 12


class DlqCipher:
    """Encrypts and decrypts DLQ payloads; ``nonce || ciphertext+tag``."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.pii_hmac_key.get_secret_value().encode()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"flightrec-dlq").derive(
            secret
        )
        self._aead = AESGCM(key)
        self.key_id = settings.pii_key_id

    @property
    def algorithm(self) -> str:
        """:data:`ALGORITHM`, for the DLQ record's encryption header."""
        return ALGORITHM

    def encrypt(self, plaintext: bytes, associated: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated)

    def decrypt(self, payload: bytes, associated: bytes = b"") -> bytes:
        nonce, body = payload[:_NONCE_BYTES], payload[_NONCE_BYTES:]
        return self._aead.decrypt(nonce, body, associated)
