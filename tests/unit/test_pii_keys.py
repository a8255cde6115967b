"""The PII key ring: rotation of tokens and DLQ keys, and the development key's limits.

Tokens are made under the ring's active key; DLQ payloads are encrypted under
it and decrypted by the key id their header names, so a rotation keeps old
records readable. The built-in development key is refused, before any
connection, by a worker or ``contracts apply`` whose brokers are not local, and
logged once as a warning on a local stack.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flightrec.agents import worker
from flightrec.agents.registry import AgentRegistry
from flightrec.cli import main
from flightrec.contracts import pii_keys
from flightrec.contracts.errors import ConfigError
from flightrec.contracts.pii_keys import (
    DEVELOPMENT_PII_KEY,
    LocalPiiKeyring,
    PiiKeyring,
    load_pii_keyring,
    pii_keyring_for,
)
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing import RecordSigner
from flightrec.recorder.dlq_cipher import DlqCipher
from flightrec.recorder.pii import PiiGuard, lookup_tokens

REMOTE = "kafka.prod.example:9092"


@pytest.fixture
def not_yet_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    """The once-per-process development key warning, as in a fresh process."""
    monkeypatch.setattr(pii_keys, "_warned", False)


def ring_file(tmp_path: Path, active: str, keys: dict[str, str], name: str = "ring.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"active": active, "keys": keys}))
    return path


K1 = {"k1": "secret-one"}
K1_K2 = {"k1": "secret-one", "k2": "secret-two"}


# ------------------------------------------------------------------ the ring


def test_environment_key_is_a_one_key_ring() -> None:
    ring = load_pii_keyring(Settings(pii_hmac_key=SecretStr("s3cret"), pii_key_id="prod-1"))
    assert isinstance(ring, PiiKeyring)
    assert ring.active_id == "prod-1"
    assert ring.key_ids() == ("prod-1",)
    assert ring.secret("prod-1") == b"s3cret"


def test_keyring_file_from_the_environment(tmp_path: Path) -> None:
    path = ring_file(tmp_path, "k2", K1_K2)
    ring = load_pii_keyring(Settings.from_env({"FLIGHTREC_PII_KEYRING_FILE": str(path)}))
    assert ring.active_id == "k2"
    assert set(ring.key_ids()) == {"k1", "k2"}
    assert ring.secret("k1") == b"secret-one"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"active": "k3", "keys": {"k1": "a"}}', "active PII key id is not in the key ring"),
        ('{"active": "k1", "keys": {"k1": ""}}', "empty secret"),
        ('{"active": "a:b", "keys": {"a:b": "x"}}', "key id must be"),
        ('{"keys": {"k1": "a"}}', "a PII key ring is JSON"),
        ("not json", "cannot read the PII key ring"),
    ],
)
def test_malformed_keyring_file_is_refused(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "ring.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=needle) as caught:
        load_pii_keyring(Settings(pii_keyring_file=path))
    assert "FLIGHTREC_PII_KEYRING_FILE" in str(caught.value)


def test_keyring_file_and_environment_key_together_are_refused(tmp_path: Path) -> None:
    path = ring_file(tmp_path, "k1", K1)
    with pytest.raises(ConfigError, match="not both"):
        load_pii_keyring(Settings(pii_keyring_file=path, pii_hmac_key=SecretStr("other")))


# ------------------------------------------------------------------ rotation


def test_rotation_new_tokens_under_the_new_key_lookup_finds_both(tmp_path: Path) -> None:
    before = PiiGuard(Settings(pii_keyring_file=ring_file(tmp_path, "k1", K1, "r1.json")))
    after = PiiGuard(Settings(pii_keyring_file=ring_file(tmp_path, "k2", K1_K2, "r2.json")))
    old, new = before.token("Ada Lovelace"), after.token("Ada Lovelace")
    assert old.startswith("pii:k1:") and new.startswith("pii:k2:")
    assert old != new.replace("pii:k2:", "pii:k1:")  # another secret, not just another id
    # The k1 key is still in the rotated ring: a lookup finds records of both eras.
    found = lookup_tokens(after.keyring, "Ada Lovelace")
    assert old in found and new in found
    assert lookup_tokens(before.keyring, "Ada Lovelace")[0] == old
    assert not set(found) & set(lookup_tokens(after.keyring, "Ada Lovelace "))


def test_lookup_tokens_include_the_dlq_rule_pseudonyms() -> None:
    from flightrec.contracts.dlq_action import pseudonymise

    ring = LocalPiiKeyring(K1_K2, "k2", source="test")
    found = lookup_tokens(ring, "ada@example.com")
    assert pseudonymise("ada@example.com", b"secret-one", "k1") in found
    assert pseudonymise("ada@example.com", b"secret-two", "k2") in found
    assert len(found) == 4


def test_dlq_records_of_both_keys_decrypt_by_their_header(tmp_path: Path) -> None:
    before = DlqCipher(Settings(pii_keyring_file=ring_file(tmp_path, "k1", K1, "r1.json")))
    old = before.encrypt(b"poison one")
    old_header = f"{before.algorithm};{before.key_id}".encode()
    assert old_header == b"AES-256-GCM;k1"

    after = DlqCipher(Settings(pii_keyring_file=ring_file(tmp_path, "k2", K1_K2, "r2.json")))
    new = after.encrypt(b"poison two")
    new_header = f"{after.algorithm};{after.key_id}"
    assert new_header == "AES-256-GCM;k2"

    assert after.decrypt(old, header=old_header) == b"poison one"
    assert after.decrypt(new, header=new_header) == b"poison two"
    # The header decides: the active key alone does not open the old record.
    with pytest.raises(ConfigError, match="does not decrypt"):
        after.decrypt(old)


def test_unknown_or_wrong_key_id_is_a_clear_error(tmp_path: Path) -> None:
    cipher = DlqCipher(Settings(pii_keyring_file=ring_file(tmp_path, "k2", K1_K2)))
    payload = cipher.encrypt(b"poison")
    with pytest.raises(ConfigError, match="unknown PII key id") as unknown:
        cipher.decrypt(payload, header=b"AES-256-GCM;k9")
    assert "k9" in str(unknown.value)
    with pytest.raises(ConfigError, match="does not decrypt") as wrong:
        cipher.decrypt(payload, header=b"AES-256-GCM;k1")
    assert "k1" in str(wrong.value)
    with pytest.raises(ConfigError, match="not a DLQ encryption header"):
        cipher.decrypt(payload, header=b"ROT13;k2")


# ------------------------------------------------------------ development key


def test_development_key_refused_on_remote_brokers() -> None:
    with pytest.raises(ConfigError) as caught:
        pii_keyring_for(Settings(bootstrap_servers=REMOTE))
    message = str(caught.value)
    assert "development key" in message
    assert "FLIGHTREC_PII_HMAC_KEY" in message and "FLIGHTREC_PII_KEYRING_FILE" in message
    # A managed key, or a ring whose active key is not the development key, is fine.
    managed = Settings(bootstrap_servers=REMOTE, pii_hmac_key=SecretStr("managed"))
    assert pii_keyring_for(managed).active_id == "k1"
    retired_dev = LocalPiiKeyring({"k1": DEVELOPMENT_PII_KEY, "k2": "managed"}, "k2", source="t")
    assert pii_keyring_for(Settings(bootstrap_servers=REMOTE), retired_dev) is retired_dev


@pytest.mark.usefixtures("not_yet_warned")
def test_development_key_on_a_local_stack_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flightrec.contracts.pii_keys"):
        pii_keyring_for(Settings())
        pii_keyring_for(Settings())
        pii_keyring_for(Settings(pii_hmac_key=SecretStr("managed")))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "development key" in warnings[0].getMessage()


@pytest.mark.usefixtures("not_yet_warned")
def test_managed_key_on_a_local_stack_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flightrec.contracts.pii_keys"):
        pii_keyring_for(Settings(pii_hmac_key=SecretStr("managed")))
    assert not caplog.records


def test_worker_with_the_development_key_refused_before_any_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[str]
) -> None:
    signing = tmp_path / "signing.pem"
    signing.write_bytes(RecordSigner.generate().private_pem())
    settings = Settings(bootstrap_servers=REMOTE, signing_key_file=signing)

    def connect(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the worker connected before refusing the key")

    monkeypatch.setattr("flightrec.kafka.topics.ensure_topics", connect)
    with pytest.raises(ConfigError, match="FLIGHTREC_PII_HMAC_KEY"):
        worker.run_worker(settings, AgentRegistry([]))
    assert no_network == []


async def test_worker_services_refuse_the_development_key_before_any_connection(
    tmp_path: Path, no_network: list[str]
) -> None:
    signing = tmp_path / "signing.pem"
    signing.write_bytes(RecordSigner.generate().private_pem())
    settings = Settings(bootstrap_servers=REMOTE, signing_key_file=signing)
    with pytest.raises(ConfigError, match="FLIGHTREC_PII_HMAC_KEY"):
        async with worker.open_services(settings, AgentRegistry([])):
            pass  # pragma: no cover - never reached
    assert no_network == []


def test_contracts_apply_with_the_development_key_refused_before_any_connection(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_network: list[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("FLIGHTREC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS", REMOTE)

    def connect(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("contracts apply connected before refusing the key")

    monkeypatch.setattr("flightrec.contracts.governance.apply_contracts", connect)
    assert main(["contracts", "apply"]) == 3
    err = capsys.readouterr().err
    assert "development key" in err and "FLIGHTREC_PII_HMAC_KEY" in err
    assert no_network == []
