"""Which key signs and which keys verify, from Settings.

A worker on a local stack falls back to a development key it creates (0600)
under the stack dir; any other worker without a configured key refuses to
start, decided from the configuration alone, before any connection.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flightrec.contracts.errors import ConfigError
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing import RecordSigner
from flightrec.contracts.signing_keys import development_key_path, keyring_for, signer_for

LOCAL = ["127.0.0.1:9092", "localhost:9092", "[::1]:9092", "PLAINTEXT://127.0.0.1:9092"]
REMOTE = [
    "kafka.prod.example:9092",
    "10.0.0.5:9092",
    "127.0.0.1:9092,kafka.prod.example:9092",
    "localhost:1,kafka:2",
]


def settings(tmp_path: Path, bootstrap: str, **values: Any) -> Settings:
    return Settings(bootstrap_servers=bootstrap, stack_dir=tmp_path / "stack", **values)


def key_file(tmp_path: Path, signer: RecordSigner, name: str = "signing.pem") -> Path:
    path = tmp_path / name
    path.write_bytes(signer.private_pem())
    return path


# ------------------------------------------------------------ brokers_are_local


@pytest.mark.parametrize(
    ("bootstrap", "local"),
    [
        ("127.0.0.1:9092", True),
        ("PLAINTEXT://127.0.0.1:9092", True),
        ("127.0.0.2:1", True),
        ("127.0.0.1", True),
        ("localhost:9092", True),
        ("LOCALHOST:9092", True),
        ("localhost.localdomain:9092", True),
        ("[::1]:9092", True),
        ("::1", True),
        ("SSL://[::1]:9093", True),
        (" 127.0.0.1:9092 , localhost:9093 ", True),
        ("localhost:9092,", True),
        ("localhost:1,kafka:2", False),
        ("kafka:9092", False),
        ("kafka.prod.example:9092", False),
        ("SASL_SSL://kafka.prod.example:9092", False),
        ("10.0.0.5:9092", False),
        ("0.0.0.0:9092", False),
        ("[2001:db8::1]:9092", False),
        ("localhost.evil.example:9092", False),
        ("127.0.0.1.nip.io:9092", False),
        ("", False),
        (" , ", False),
    ],
)
def test_brokers_are_local(bootstrap: str, local: bool) -> None:
    assert Settings(bootstrap_servers=bootstrap).brokers_are_local() is local


def test_a_broker_list_given_as_librdkafka_passthrough_counts_too(tmp_path: Path) -> None:
    """librdkafka connects where its own property says, whatever
    ``bootstrap_servers`` holds: a remote broker given that way is remote."""
    config = Settings.from_env(
        {
            "FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
            "FLIGHTREC_KAFKA_METADATA_BROKER_LIST": "kafka.prod.example:9092",
            "FLIGHTREC_STACK_DIR": str(tmp_path / "stack"),
        }
    )
    assert config.kafka_client_config()["metadata.broker.list"] == "kafka.prod.example:9092"
    assert not config.brokers_are_local()
    with pytest.raises(ConfigError, match="FLIGHTREC_SIGNING_KEY_FILE"):
        signer_for(config)
    assert not config.stack_dir.exists()


@pytest.mark.parametrize("alias", ["bootstrap.servers", "metadata.broker.list"])
@pytest.mark.parametrize(("servers", "local"), [("kafka:9092", False), ("localhost:9092", True)])
def test_a_passthrough_broker_list_decides_with_ours(alias: str, servers: str, local: bool) -> None:
    config = Settings(bootstrap_servers="127.0.0.1:9092", kafka_config={alias: servers})
    assert config.brokers_are_local() is local


# ------------------------------------------------------------------ signer_for


@pytest.mark.parametrize("bootstrap", LOCAL)
def test_a_local_stack_creates_a_private_development_key_once(
    tmp_path: Path, bootstrap: str, no_network: list[str]
) -> None:
    config = settings(tmp_path, bootstrap)
    path = development_key_path(config)
    assert not path.exists()

    first = signer_for(config)

    assert path.is_file() and path.is_relative_to(config.stack_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert RecordSigner.from_file(path).key_id == first.key_id
    assert signer_for(config).key_id == first.key_id  # the same key on the next start
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    assert no_network == []


def test_without_create_a_missing_development_key_is_a_config_error(tmp_path: Path) -> None:
    config = settings(tmp_path, "127.0.0.1:9092")
    with pytest.raises(ConfigError):
        signer_for(config, create=False)
    assert not development_key_path(config).exists()


@pytest.mark.parametrize("bootstrap", REMOTE)
def test_remote_brokers_without_a_key_refuse_before_any_connection(
    tmp_path: Path, bootstrap: str, no_network: list[str]
) -> None:
    config = settings(tmp_path, bootstrap)
    with pytest.raises(ConfigError) as raised:
        signer_for(config)
    assert "FLIGHTREC_SIGNING_KEY_FILE" in str(raised.value)
    assert raised.value.context["bootstrap_servers"] == bootstrap
    assert not config.stack_dir.exists()  # no development key made up
    assert no_network == []


@pytest.mark.parametrize("bootstrap", ["127.0.0.1:9092", "kafka.prod.example:9092"])
def test_a_configured_key_file_is_used(tmp_path: Path, bootstrap: str) -> None:
    managed = RecordSigner.generate()
    config = settings(tmp_path, bootstrap, signing_key_file=key_file(tmp_path, managed))
    assert signer_for(config).key_id == managed.key_id
    assert not config.stack_dir.exists()


@pytest.mark.parametrize("bootstrap", ["127.0.0.1:9092", "kafka.prod.example:9092"])
def test_configured_key_text_comes_first(tmp_path: Path, bootstrap: str) -> None:
    text, file = RecordSigner.generate(), RecordSigner.generate()
    config = settings(
        tmp_path,
        bootstrap,
        signing_key=SecretStr(text.private_pem().decode()),
        signing_key_file=key_file(tmp_path, file),
    )
    assert signer_for(config).key_id == text.key_id
    assert not config.stack_dir.exists()


def test_a_configured_key_comes_before_an_existing_development_key(tmp_path: Path) -> None:
    development = signer_for(settings(tmp_path, "127.0.0.1:9092"))
    managed = RecordSigner.generate()
    config = settings(tmp_path, "127.0.0.1:9092", signing_key_file=key_file(tmp_path, managed))
    assert signer_for(config).key_id == managed.key_id != development.key_id


@pytest.mark.parametrize("how", ["absent", "junk"])
def test_an_unusable_configured_key_is_a_config_error(tmp_path: Path, how: str) -> None:
    path = tmp_path / "signing.pem"
    if how == "junk":
        path.write_text("not a key")
    config = settings(tmp_path, "127.0.0.1:9092", signing_key_file=path)
    with pytest.raises(ConfigError):
        signer_for(config)
    assert not config.stack_dir.exists()  # no fallback to a development key
    with pytest.raises(ConfigError, match="PEM"):
        signer_for(settings(tmp_path, "127.0.0.1:9092", signing_key=SecretStr("not a key")))


# ------------------------------------------------------------------ the environment


def test_the_signing_settings_are_read_from_the_environment_and_round_trip(
    tmp_path: Path,
) -> None:
    pem = RecordSigner.generate().private_pem().decode()
    env = {
        "FLIGHTREC_SIGNING_KEY": pem,
        "FLIGHTREC_SIGNING_KEY_FILE": str(tmp_path / "signing.pem"),
        "FLIGHTREC_TRUSTED_KEYS": f" {tmp_path / 'a.pem'} ,{tmp_path / 'keys'},,",
    }
    config = Settings.from_env(env)
    assert config.signing_key is not None and config.signing_key.get_secret_value() == pem
    assert config.signing_key_file == tmp_path / "signing.pem"
    assert config.trusted_keys == (str(tmp_path / "a.pem"), str(tmp_path / "keys"))
    assert pem not in repr(config)  # a secret, like the other keys

    out = config.to_env()
    assert out["FLIGHTREC_SIGNING_KEY_FILE"] == str(tmp_path / "signing.pem")
    assert out["FLIGHTREC_TRUSTED_KEYS"] == f"{tmp_path / 'a.pem'},{tmp_path / 'keys'}"
    again = Settings.from_env(out)
    assert again.signing_key is not None and again.signing_key.get_secret_value() == pem
    assert (again.signing_key_file, again.trusted_keys) == (
        config.signing_key_file,
        config.trusted_keys,
    )


def test_unset_signing_settings_stay_unset() -> None:
    config = Settings.from_env({})
    assert (config.signing_key, config.signing_key_file, config.trusted_keys) == (None, None, ())
    out = config.to_env()
    assert "FLIGHTREC_SIGNING_KEY" not in out and "FLIGHTREC_SIGNING_KEY_FILE" not in out
    assert Settings.from_env(out).trusted_keys == ()


# ------------------------------------------------------------------ keyring_for


def test_the_keyring_trusts_the_configured_key_and_the_listed_ones(tmp_path: Path) -> None:
    managed, rotated, peer = (RecordSigner.generate() for _ in range(3))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "rotated.pem").write_bytes(rotated.public_pem())
    config = settings(
        tmp_path,
        "kafka.prod.example:9092",
        signing_key_file=key_file(tmp_path, managed),
        trusted_keys=(str(keys), str(key_file(tmp_path, peer, "peer.pem"))),
    )
    expected = sorted(s.key_id for s in (managed, rotated, peer))
    assert keyring_for(config).key_ids() == expected


def test_a_verifier_needs_no_private_key(tmp_path: Path) -> None:
    trusted = RecordSigner.generate()
    path = tmp_path / "trusted.pem"
    path.write_bytes(trusted.public_pem())
    config = settings(tmp_path, "kafka.prod.example:9092", trusted_keys=(str(path),))
    assert keyring_for(config).key_ids() == [trusted.key_id]


def test_a_local_stack_trusts_its_development_key(tmp_path: Path) -> None:
    config = settings(tmp_path, "127.0.0.1:9092")
    development = signer_for(config)
    assert keyring_for(config).key_ids() == [development.key_id]


def test_a_keyring_of_no_key_is_a_config_error(tmp_path: Path) -> None:
    # Away from a local stack nothing is made up: no key, no verification.
    # (On a local stack the development key is made on first use by a worker
    # and a verifier alike: test_a_local_stack_trusts_its_development_key.)
    config = settings(tmp_path, "kafka.prod.example:9092")
    with pytest.raises(ConfigError):
        keyring_for(config)
    assert not config.stack_dir.exists()
