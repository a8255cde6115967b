"""Settings from a Confluent Cloud style environment: right client configs, no leaked secrets."""

from __future__ import annotations

import logging

import pytest

from contracts.settings import PRODUCER_SAFE_DEFAULTS, Settings

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
