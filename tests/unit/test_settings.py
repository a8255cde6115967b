"""Settings from a Confluent Cloud style environment: right client configs, no leaked secrets."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from typing import Any, get_args, get_origin

import httpx2
import pytest
from pydantic import SecretStr

from flightrec.contracts.codec import registry_call, registry_client
from flightrec.contracts.errors import RegistryUnavailableError
from flightrec.contracts.settings import (
    PRODUCER_SAFE_DEFAULTS,
    REDACTED,
    Settings,
    is_secret_kafka_property,
    redact_url,
)

PASSWORD = "cloud-api-secret-7f3a9c"
SR_SECRET = "sr-secret-2b8e11"
CLOUD_ENV = {
    "FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS": "pkc-abc12.eu-west-1.aws.confluent.cloud:9092",
    "FLIGHTREC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "FLIGHTREC_KAFKA_SASL_MECHANISM": "PLAIN",
    "FLIGHTREC_KAFKA_SASL_USERNAME": "CLOUDKEY123",
    "FLIGHTREC_KAFKA_SASL_PASSWORD": PASSWORD,
    "FLIGHTREC_SCHEMA_REGISTRY_URL": "https://psrc-xyz.eu-west-1.aws.confluent.cloud",
    "FLIGHTREC_SCHEMA_REGISTRY_BASIC_AUTH": f"SRKEY456:{SR_SECRET}",
    "FLIGHTREC_REPLICATION_FACTOR": "3",
    "UNRELATED_VARIABLE": "ignored",
}
SASL = {
    "bootstrap.servers": "pkc-abc12.eu-west-1.aws.confluent.cloud:9092",
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "PLAIN",
    "sasl.username": "CLOUDKEY123",
    "sasl.password": PASSWORD,
}


@pytest.fixture
def cloud() -> Settings:
    return Settings.from_env(CLOUD_ENV)


def test_producer_config_carries_sasl_and_keeps_safe_defaults(cloud: Settings) -> None:
    config = cloud.producer_config()
    for key, value in SASL.items():
        assert config[key] == value
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True
    assert config["delivery.timeout.ms"] == PRODUCER_SAFE_DEFAULTS["delivery.timeout.ms"]
    assert config["client.dns.lookup"] == "use_all_dns_ips"


def test_consumer_config_carries_sasl_and_commits_manually(cloud: Settings) -> None:
    config = cloud.consumer_config("auditors")
    for key, value in SASL.items():
        assert config[key] == value
    assert config["group.id"] == "auditors"
    assert config["enable.auto.commit"] is False


def test_registry_config_uses_basic_auth(cloud: Settings) -> None:
    assert cloud.schema_registry_config() == {
        "url": "https://psrc-xyz.eu-west-1.aws.confluent.cloud",
        "basic.auth.user.info": f"SRKEY456:{SR_SECRET}",
    }
    assert cloud.replication_factor == 3


def test_local_defaults_have_no_auth() -> None:
    local = Settings.from_env({})
    assert "basic.auth.user.info" not in local.schema_registry_config()
    assert "sasl.password" not in local.producer_config()
    assert local.producer_config()["acks"] == "all"


def test_secrets_are_kept_apart_from_plain_kafka_config(cloud: Settings) -> None:
    assert "sasl.password" not in cloud.kafka_config
    assert cloud.kafka_secrets["sasl.password"].get_secret_value() == PASSWORD


def test_secrets_never_show_in_repr_str_or_logs(
    cloud: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("flightrec.test.settings")
    with caplog.at_level(logging.DEBUG, logger="flightrec.test.settings"):
        logger.info("settings %s", cloud)
        logger.info("settings %r", cloud)
        logger.info("dump %s", cloud.model_dump())
        logger.info("kafka secrets %s", cloud.kafka_secrets)
    rendered = [repr(cloud), str(cloud), caplog.text]
    assert "CLOUDKEY123" in caplog.text  # the log did contain the settings
    for text in rendered:
        assert PASSWORD not in text
        assert SR_SECRET not in text


def test_secret_kafka_properties_are_secrets_whatever_their_name() -> None:
    settings = Settings.from_env(
        {
            "FLIGHTREC_KAFKA_SSL_KEY_PASSWORD": "key-pass-99",
            "FLIGHTREC_KAFKA_SSL_KEYSTORE_PASSWORD": "store-pass-98",
        }
    )
    assert "key-pass-99" not in repr(settings)
    assert "store-pass-98" not in repr(settings)
    config = settings.kafka_client_config()
    assert config["ssl.key.password"] == "key-pass-99"
    assert config["ssl.keystore.password"] == "store-pass-98"


# One librdkafka property of each kind the secrecy rule covers (CONFIGURATION.md),
# each with a value that appears nowhere else.
SECRET_PROPERTIES = {
    "FLIGHTREC_KAFKA_SASL_PASSWORD": "sasl-pass-11",  # password
    "FLIGHTREC_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET": "oidc-client-secret-12",  # secret
    "FLIGHTREC_KAFKA_SASL_OAUTHBEARER_ASSERTION_PRIVATE_KEY_PASSPHRASE": "phrase-13",
    "FLIGHTREC_KAFKA_SSL_KEY_PEM": "-----BEGIN PRIVATE KEY-----key-pem-14",  # key / pem
    "FLIGHTREC_KAFKA_SSL_KEYSTORE_KEY": "keystore-key-15",  # keystore
    "FLIGHTREC_KAFKA_SASL_OAUTHBEARER_CONFIG": "principal=admin clientSecret=oauth-cfg-16",
    "FLIGHTREC_KAFKA_SASL_KERBEROS_KEYTAB": "keytab-contents-17",  # keytab
    "FLIGHTREC_KAFKA_SASL_JAAS_CONFIG": 'PlainLoginModule password="jaas-18";',  # jaas
    # Secret by its value: a URL with a password, whatever the property is called.
    "FLIGHTREC_KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL": "https://cid:url-secret-19@idp/token",
}
# What must never show: the whole value, or the password part of a URL.
SECRET_TEXT = {
    key: value.split("@")[0].rsplit(":", 1)[1] if "://" in value else value
    for key, value in SECRET_PROPERTIES.items()
}
PLAIN_PROPERTIES = {
    "FLIGHTREC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "FLIGHTREC_KAFKA_SASL_USERNAME": "CLOUDKEY123",
    "FLIGHTREC_KAFKA_SASL_OAUTHBEARER_CLIENT_ID": "oidc-client-id",
    "FLIGHTREC_KAFKA_SSL_CERTIFICATE_LOCATION": "/etc/flightrec/client.crt",
    "FLIGHTREC_KAFKA_SASL_OAUTHBEARER_SCOPE": "kafka",
}


def _prop(variable: str) -> str:
    return variable.removeprefix("FLIGHTREC_KAFKA_").lower().replace("_", ".")


def _shown(settings: Settings, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every way the settings get shown: repr, str, and a log of them and their dumps."""
    logger = logging.getLogger("flightrec.test.settings")
    with caplog.at_level(logging.DEBUG, logger="flightrec.test.settings"):
        logger.info("settings %s", settings)
        logger.info("settings %r", settings)
        logger.info("dump %s", settings.model_dump())
        logger.info("json %s", settings.model_dump_json())
        logger.info("kafka %s secrets %s", settings.kafka_config, settings.kafka_secrets)
    return [repr(settings), str(settings), f"{settings}", caplog.text]


@pytest.mark.parametrize("variable", sorted(SECRET_PROPERTIES))
def test_each_kind_of_secret_property_stays_out_of_repr_str_and_logs(
    variable: str, caplog: pytest.LogCaptureFixture
) -> None:
    value = SECRET_PROPERTIES[variable]
    settings = Settings.from_env({variable: value, **PLAIN_PROPERTIES})
    shown = _shown(settings, caplog)
    assert "CLOUDKEY123" in caplog.text  # the log did contain the settings
    for text in shown:
        assert SECRET_TEXT[variable] not in text
    prop = _prop(variable)
    assert prop not in settings.kafka_config
    assert is_secret_kafka_property(prop) or "://" in value
    # ... while the clients still get the real value.
    assert settings.kafka_client_config()[prop] == value
    assert settings.producer_config()[prop] == value
    assert settings.consumer_config("g")[prop] == value
    assert settings.to_env()[variable] == value


def test_all_secret_properties_at_once_reach_the_clients(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings.from_env({**SECRET_PROPERTIES, **PLAIN_PROPERTIES})
    shown = "\n".join(_shown(settings, caplog))
    config = settings.producer_config()
    for variable, value in SECRET_PROPERTIES.items():
        assert SECRET_TEXT[variable] not in shown
        assert config[_prop(variable)] == value
    assert Settings.from_env(settings.to_env()).producer_config() == config


def test_plain_kafka_properties_stay_visible() -> None:
    settings = Settings.from_env(PLAIN_PROPERTIES)
    assert settings.kafka_secrets == {}
    for variable, value in PLAIN_PROPERTIES.items():
        assert settings.kafka_config[_prop(variable)] == value
        assert value in repr(settings)


def test_secret_properties_given_directly_are_moved_to_secrets() -> None:
    # Not only from_env: a Settings built in code follows the same rule.
    settings = Settings(
        kafka_config={"sasl.password": "direct-pass-21", "client.id": "me"},
        kafka_secrets={"ssl.key.password": "direct-key-22"},
    )
    assert dict(settings.kafka_config) == {"client.id": "me"}
    assert "direct-pass-21" not in repr(settings)
    config = settings.kafka_client_config()
    assert config["sasl.password"] == "direct-pass-21"
    assert config["ssl.key.password"] == "direct-key-22"
    overridden = Settings.from_env({}, kafka_config={"sasl.oauthbearer.client.secret": "ov-23"})
    assert "ov-23" not in repr(overridden)
    assert overridden.kafka_client_config()["sasl.oauthbearer.client.secret"] == "ov-23"


URL_PASSWORD = "sr-url-pwd-31"


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("FLIGHTREC_SCHEMA_REGISTRY_URL", "schema_registry_url"),
        ("FLIGHTREC_OPENAI_BASE_URL", "openai_base_url"),
        ("FLIGHTREC_OTLP_ENDPOINT", "otlp_endpoint"),
        ("FLIGHTREC_BUREAU_URL", "bureau_url"),
    ],
)
def test_url_with_credentials_shows_masked(
    variable: str, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"https://sr-user:{URL_PASSWORD}@psrc-xyz.confluent.cloud:443/base"
    settings = Settings.from_env({variable: url})
    masked = f"https://sr-user:{REDACTED}@psrc-xyz.confluent.cloud:443/base"
    for text in _shown(settings, caplog):
        assert URL_PASSWORD not in text
        assert masked in text
    # The field and what the clients get keep the real URL.
    assert getattr(settings, field) == url
    assert settings.to_env()[variable] == url


def test_registry_config_keeps_the_real_url_with_credentials() -> None:
    url = f"https://sr-user:{URL_PASSWORD}@psrc-xyz.confluent.cloud"
    settings = Settings.from_env({"FLIGHTREC_SCHEMA_REGISTRY_URL": url})
    assert settings.schema_registry_config() == {"url": url}
    assert URL_PASSWORD not in repr(settings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://u:pw@h:8081/p?q=1", f"https://u:{REDACTED}@h:8081/p?q=1"),
        ("https://u:p@ss@h", f"https://u:{REDACTED}@h"),  # unencoded @ in the password
        ("http://a:1@h1,http://b:2@h2", f"http://a:{REDACTED}@h1,http://b:{REDACTED}@h2"),
        ("failed: https://u:pw@h/x (timeout)", f"failed: https://u:{REDACTED}@h/x (timeout)"),
        ("http://127.0.0.1:18081", "http://127.0.0.1:18081"),
        ("https://user-only@h", "https://user-only@h"),
        ("mail me: a@b.example", "mail me: a@b.example"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_registry_errors_show_the_url_masked() -> None:
    url = f"https://sr-user:{URL_PASSWORD}@127.0.0.1:9"

    def unreachable() -> None:
        raise httpx2.ConnectError(f"cannot connect to {url}")

    with pytest.raises(RegistryUnavailableError) as caught:
        registry_call(unreachable, what="latest version of x", url=url)
    assert URL_PASSWORD not in str(caught.value)
    assert f"sr-user:{REDACTED}@127.0.0.1:9" in str(caught.value)


def test_an_unreachable_registry_is_registry_unavailable() -> None:
    # The real client's transport error, not a stand-in: registry_call must
    # recognise what confluent-kafka's client raises when nothing listens.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = registry_client(Settings(schema_registry_url=url), timeout_s=2.0, max_retries=0)
    try:
        with pytest.raises(RegistryUnavailableError, match="latest version of x"):
            registry_call(client.get_latest_version, "x", what="latest version of x", url=url)
    finally:
        client.close()


def test_stack_ports_derive_local_urls() -> None:
    settings = Settings.from_env(
        {
            "FLIGHTREC_KAFKA_PORT": "39092",
            "FLIGHTREC_REGISTRY_PORT": "38081",
            "FLIGHTREC_BUREAU_PORT": "38090",
        }
    )
    assert settings.bootstrap_servers == "127.0.0.1:39092"
    assert settings.schema_registry_url == "http://127.0.0.1:38081"
    assert settings.bureau_url == "http://127.0.0.1:38090"


def test_settings_are_frozen(cloud: Settings) -> None:
    with pytest.raises(ValueError):
        cloud.replication_factor = 1  # type: ignore[misc]


def _holds_secret(annotation: Any) -> bool:
    """Whether a field's type is, or contains (``X | None``, ``Mapping[str, X]``), ``SecretStr``."""
    if annotation is SecretStr:
        return True
    return any(_holds_secret(arg) for arg in get_args(annotation))


# Every secret field of Settings, read from the model: a field is secret when its
# type holds a SecretStr (the settings module marks secrets no other way).
SECRET_FIELDS = sorted(
    name for name, field in Settings.model_fields.items() if _holds_secret(field.annotation)
)


def test_the_known_secrets_are_marked_secret() -> None:
    # Dropping SecretStr from one of these would also drop it from SECRET_FIELDS,
    # and the leak test below would no longer look at it.
    assert {"openai_api_key", "pii_hmac_key", "schema_registry_basic_auth", "kafka_secrets"} <= set(
        SECRET_FIELDS
    )


@pytest.mark.parametrize("field", SECRET_FIELDS)
def test_no_secret_field_shows_in_repr_str_dumps_or_logs(
    field: str, caplog: pytest.LogCaptureFixture
) -> None:
    canary = f"canary-{field}-5d1e"
    annotation = Settings.model_fields[field].annotation
    # A mapping of secrets (kafka_secrets) gets one entry; a single secret the value.
    origin = get_origin(annotation)
    mapping = isinstance(origin, type) and issubclass(origin, Mapping)
    value: Any = {"sasl.password": canary} if mapping else canary
    settings = Settings(**{field: value}, app_id="visible-app-id")

    held = getattr(settings, field)
    secret = held["sasl.password"] if mapping else held
    assert secret.get_secret_value() == canary  # the canary is there, only hidden
    shown = _shown(settings, caplog)
    shown += [
        str(settings.model_dump()),
        str(settings.model_dump(mode="json")),
        settings.model_dump_json(),
    ]
    assert "visible-app-id" in caplog.text  # the log did contain the settings
    for text in shown:
        assert canary not in text
