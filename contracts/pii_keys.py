"""The PII key ring: which secret makes new tokens, which secrets read old ones.

PII tokens (keyed HMAC) and dead-letter encryption both derive from a PII
secret named by a key id; the id travels in every token and in every DLQ
record's encryption header, so records made under a rotated-out key stay
readable as long as its secret is kept in the ring (docs/design.md, "Privacy").

* :class:`PiiKeyring`: the interface: one active key id for everything new,
  every key id still held for reading. A KMS plugin implements it.
* :class:`LocalPiiKeyring`: the keys held in the process, from
  ``FLIGHTREC_PII_KEYRING_FILE`` (JSON ``{"active": "k2", "keys": {"k1": "...",
  "k2": "..."}}``) or, without it, the one key of ``FLIGHTREC_PII_HMAC_KEY``
  named ``FLIGHTREC_PII_KEY_ID``.
* :func:`pii_keyring_for`: the ring a worker may use. A process whose brokers
  are not all on this machine (decided from the configuration, before any
  connection, as for signing keys) refuses the built-in development key; on a
  local stack it is used with a warning, logged once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from flightrec.contracts.errors import ConfigError
from flightrec.contracts.settings import DEVELOPMENT_PII_KEY, Settings

__all__ = [
    "DEVELOPMENT_PII_KEY",
    "LocalPiiKeyring",
    "PiiKeyring",
    "load_pii_keyring",
    "pii_keyring_for",
]

log = logging.getLogger(__name__)

_warned = False
_warn_lock = threading.Lock()


@runtime_checkable
class PiiKeyring(Protocol):
    """PII secrets by key id: one active for new tokens and ciphertexts, the
    rest kept for reading what was made under them."""

    @property
    def active_id(self) -> str:
        """The id of the key that makes new tokens and encrypts new DLQ payloads."""
        ...

    def key_ids(self) -> tuple[str, ...]:
        """Every key id the ring holds, the active one included."""
        ...

    def secret(self, key_id: str) -> bytes:
        """The secret of ``key_id``; :class:`ConfigError` when the ring lacks it."""
        ...


class LocalPiiKeyring:
    """A :class:`PiiKeyring` of secrets held in the process."""

    def __init__(self, keys: Mapping[str, str | bytes], active: str, *, source: str) -> None:
        if not keys:
            raise ConfigError("the PII key ring holds no key", source=source)
        for key_id, secret in keys.items():
            # ':' separates the id inside a token, ';' inside the encryption header.
            if not key_id or any(c in key_id for c in ":; \t\n"):
                raise ConfigError(
                    "a PII key id must be non-empty, without ':', ';' or spaces",
                    key_id=key_id,
                    source=source,
                )
            if not secret:
                raise ConfigError("a PII key has an empty secret", key_id=key_id, source=source)
        if active not in keys:
            raise ConfigError(
                "the active PII key id is not in the key ring",
                active=active,
                key_ids=sorted(keys),
                source=source,
            )
        self._keys = {
            key_id: secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
            for key_id, secret in keys.items()
        }
        self._active = active
        self.source = source

    @classmethod
    def from_file(cls, path: Path) -> LocalPiiKeyring:
        """The ring of a JSON key-ring file (see the module docstring)."""
        source = f"FLIGHTREC_PII_KEYRING_FILE={path}"
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                "cannot read the PII key ring", source=source, error=str(exc)
            ) from exc
        keys = data.get("keys") if isinstance(data, dict) else None
        active = data.get("active") if isinstance(data, dict) else None
        if (
            not isinstance(keys, dict)
            or not isinstance(active, str)
            or not all(isinstance(v, str) for v in keys.values())
        ):
            raise ConfigError(
                'a PII key ring is JSON {"active": "<id>", "keys": {"<id>": "<secret>", ...}}',
                source=source,
            )
        return cls(keys, active, source=source)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalPiiKeyring:
        """The one-key ring of ``FLIGHTREC_PII_HMAC_KEY`` / ``FLIGHTREC_PII_KEY_ID``."""
        return cls(
            {settings.pii_key_id: settings.pii_hmac_key.get_secret_value()},
            settings.pii_key_id,
            source="FLIGHTREC_PII_HMAC_KEY",
        )

    @property
    def active_id(self) -> str:
        """The id of the key for everything new."""
        return self._active

    def key_ids(self) -> tuple[str, ...]:
        """Every key id held, in the order given."""
        return tuple(self._keys)

    def secret(self, key_id: str) -> bytes:
        """The secret of ``key_id``; :class:`ConfigError` naming the held ids if absent."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise ConfigError(
                "unknown PII key id: the key ring does not hold it (a retired key "
                "must stay in the ring for as long as records made under it are read)",
                key_id=key_id,
                key_ids=sorted(self._keys),
                source=self.source,
            ) from None


def load_pii_keyring(settings: Settings) -> LocalPiiKeyring:
    """The ring ``settings`` configure, with no check on where it is used."""
    if settings.pii_keyring_file is None:
        return LocalPiiKeyring.from_settings(settings)
    if settings.pii_hmac_key.get_secret_value() != DEVELOPMENT_PII_KEY:
        raise ConfigError(
            "set FLIGHTREC_PII_KEYRING_FILE or FLIGHTREC_PII_HMAC_KEY, not both",
            pii_keyring_file=str(settings.pii_keyring_file),
        )
    return LocalPiiKeyring.from_file(settings.pii_keyring_file)


def pii_keyring_for(settings: Settings, keyring: PiiKeyring | None = None) -> PiiKeyring:
    """The ring a worker (or ``contracts apply``) may use: ``keyring`` or the
    configured one, refused when its active key is the built-in development key
    and the brokers are not all local; on a local stack, that key is used with
    a warning logged once per process."""
    ring = keyring if keyring is not None else load_pii_keyring(settings)
    if ring.secret(ring.active_id) != DEVELOPMENT_PII_KEY.encode("utf-8"):
        return ring
    if not settings.brokers_are_local():
        raise ConfigError(
            "the PII key is the built-in development key, which everyone knows: brokers "
            "not on this machine need a managed key; set FLIGHTREC_PII_HMAC_KEY (and "
            "FLIGHTREC_PII_KEY_ID) or FLIGHTREC_PII_KEYRING_FILE",
            bootstrap_servers=settings.bootstrap_servers,
        )
    global _warned
    with _warn_lock:
        first, _warned = not _warned, True
    if first:
        log.warning(
            "PII tokens and DLQ payloads use the built-in development key "
            "(FLIGHTREC_PII_HMAC_KEY unset): fine on a local stack, never with real data"
        )
    return ring
