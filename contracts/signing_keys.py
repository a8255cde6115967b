"""Which key signs and which keys verify, from :class:`Settings`.

* :func:`signer_for`: the key of ``FLIGHTREC_SIGNING_KEY`` (PEM text) or
  ``FLIGHTREC_SIGNING_KEY_FILE``. Without either, a worker whose brokers are
  all on this machine (decided from the configuration, before any connection)
  uses the development key under ``<stack_dir>/signing/``, created on first use
  (file mode 0600); any other worker refuses to start, because a record
  signed with a key nobody manages proves nothing.
* :func:`keyring_for`: the public keys a verifier trusts: those listed in
  ``FLIGHTREC_TRUSTED_KEYS``, the public half of the configured signing key,
  and, on a local stack, the development key's.
"""

from __future__ import annotations

import os
from pathlib import Path

from flightrec.contracts.errors import ConfigError
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing import Keyring, RecordSigner

__all__ = ["development_key_path", "keyring_for", "signer_for"]


def development_key_path(settings: Settings) -> Path:
    """Where the local stack's development signing key lives."""
    return settings.stack_dir / "signing" / "development-ed25519.pem"


def signer_for(settings: Settings, *, create: bool = True) -> RecordSigner:
    """The signer ``settings`` configure (see the module docstring).

    Raises :class:`ConfigError` when no key is configured and the brokers are
    not local, or when the configured key cannot be used.
    """
    if settings.signing_key is not None:
        pem = settings.signing_key.get_secret_value().encode()
        return RecordSigner.from_pem(pem, source="FLIGHTREC_SIGNING_KEY")
    if settings.signing_key_file is not None:
        return RecordSigner.from_file(settings.signing_key_file)
    if not settings.brokers_are_local():
        raise ConfigError(
            "no signing key: a worker whose brokers are not on this machine must sign "
            "its records with a managed key; set FLIGHTREC_SIGNING_KEY_FILE (or "
            "FLIGHTREC_SIGNING_KEY) to an Ed25519 PEM private key",
            bootstrap_servers=settings.bootstrap_servers,
        )
    path = development_key_path(settings)
    if path.is_file():
        return RecordSigner.from_file(path)
    if not create:
        raise ConfigError("no development signing key yet", path=str(path))
    signer = RecordSigner.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed: two workers starting at once
    # never read half a key, and the loser of the race uses the winner's key.
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(signer.private_pem())
    try:
        os.link(partial, path)
    except FileExistsError:
        return RecordSigner.from_file(path)
    finally:
        partial.unlink()
    return signer


def keyring_for(settings: Settings) -> Keyring:
    """The keys that verify records under ``settings`` (see the module docstring)."""
    keyring = Keyring.from_files(Path(entry) for entry in settings.trusted_keys)
    try:
        # On a local stack the development key is made on first use, by a
        # worker or a verifier alike: both then agree on it.
        signer = signer_for(settings)
    except ConfigError:
        # Verifiers need not hold a private key: the trusted list is enough.
        if not len(keyring):
            raise
        return keyring
    keyring.add(signer.public_key)
    return keyring
