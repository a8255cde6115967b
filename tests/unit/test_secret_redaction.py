"""Credentials in URLs (userinfo and query string) stay out of what settings
show and out of every log line, whichever library writes it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from flightrec.contracts.settings import REDACTED, Settings, redact_url
from flightrec.log_redaction import redact_log_records

SECRET = "s3cr3t-value-41"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"https://h/v1?api_key={SECRET}&x=1",
            f"https://h/v1?api_key={REDACTED}&x=1",
        ),
        (f"http://c:4318/v1?token={SECRET}#f", f"http://c:4318/v1?token={REDACTED}#f"),
        (f"https://r/?password={SECRET}", f"https://r/?password={REDACTED}"),
        (f"https://r/?a=1&api-key={SECRET}", f"https://r/?a=1&api-key={REDACTED}"),
        (f"https://blob/x?sv=1&sig={SECRET}", f"https://blob/x?sv=1&sig={REDACTED}"),
        (
            f"http://a/?access_token={SECRET},http://b/?Client_Secret={SECRET}",
            f"http://a/?access_token={REDACTED},http://b/?Client_Secret={REDACTED}",
        ),
        (
            f"https://u:{SECRET}@h/p?key={SECRET}",
            f"https://u:{REDACTED}@h/p?key={REDACTED}",
        ),
        ("https://h/search?q=token&page=2", "https://h/search?q=token&page=2"),
        ("retention.ms=604800000", "retention.ms=604800000"),
    ],
)
def test_query_string_credentials_are_masked(text: str, expected: str) -> None:
    assert redact_url(text) == expected


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("schema_registry_url", f"https://sr.example/?password={SECRET}"),
        ("openai_base_url", f"https://llm.example/v1?api-key={SECRET}"),
        ("otlp_endpoint", f"https://otlp.example:4318?token={SECRET}"),
    ],
)
def test_settings_never_show_a_query_credential(field: str, url: str) -> None:
    settings = Settings(**{field: url})
    for shown in (repr(settings), str(settings), str(settings.model_dump())):
        assert SECRET not in shown
    assert SECRET not in settings.model_dump_json()
    # The clients still get the real URL.
    assert getattr(settings, field) == url


def test_a_passthrough_kafka_value_with_a_query_credential_is_secret() -> None:
    url = f"https://idp.example/token?client_secret={SECRET}"
    settings = Settings(kafka_config={"sasl.oauthbearer.token.endpoint.url": url})
    assert "sasl.oauthbearer.token.endpoint.url" in settings.kafka_secrets
    assert SECRET not in repr(settings)
    assert settings.kafka_client_config()["sasl.oauthbearer.token.endpoint.url"] == url


@pytest.fixture
def redacting() -> Iterator[None]:
    previous = logging.getLogRecordFactory()
    redact_log_records()
    redact_log_records()  # idempotent: wrapped once
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.ERROR])
def test_no_log_line_carries_a_url_credential(
    redacting: None, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    # As an HTTP client logs its requests: the URL is an argument, not the format.
    logger = logging.getLogger("httpx.test")
    with caplog.at_level(logging.DEBUG, logger="httpx.test"):
        logger.log(level, "HTTP Request: %s %s", "POST", f"https://h/v1?api_key={SECRET}")
        logger.log(level, "connect to https://user:%s@h failed", SECRET)
        logger.log(level, "plain %d", 7)
    assert SECRET not in caplog.text
    assert f"https://h/v1?api_key={REDACTED}" in caplog.text
    assert f"https://user:{REDACTED}@h" in caplog.text
    assert "plain 7" in caplog.text
