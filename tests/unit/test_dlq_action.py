"""The ``DLQ`` rule action without a broker: the codec writes the failing record
through the writer it was given (here ``MemoryProducer``), redacted, with the
rule headers, before the caller gets its ``RuleViolationError``; a write that
is not confirmed, or a codec without a writer, is an error rather than a
silently lost record. Against the real broker: tests/integration/test_codec.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import ConfigError, RecorderError, RuleViolationError
from flightrec.contracts.headers import (
    RULE_CONTENT_TYPE,
    RULE_ERROR_CLASS,
    RULE_ERROR_FIELD,
    RULE_EXCEPTION,
    RULE_MODE,
    RULE_NAME,
    RULE_SUBJECT,
    RULE_TOPIC,
)
from flightrec.contracts.schema_files import contract, subject_for
from flightrec.contracts.settings import Settings
from flightrec.testing import MemoryProducer, offline_registry
from flightrec.testing.samples import sample_application

SETTINGS = Settings()
DLQ = SETTINGS.topics.applications_dlq
BAD = sample_application(application_id="app-young", applicant_age=17)


@pytest.fixture
def producer() -> MemoryProducer:
    return MemoryProducer()


@pytest.fixture
async def codec(producer: MemoryProducer) -> AsyncIterator[Codec]:
    codec = Codec(SETTINGS, offline_registry(SETTINGS), dlq_producer=producer)
    await codec.start()
    yield codec
    await codec.close()


async def test_a_broken_rule_is_dead_lettered_then_raised(
    codec: Codec, producer: MemoryProducer
) -> None:
    with pytest.raises(RuleViolationError) as info:
        await codec.encode_application(BAD)
    assert info.value.context["rule"] == "application_applicant_adult"
    assert info.value.context["dlq_topic"] == DLQ

    (record,) = producer.sent  # confirmed before the caller heard of the violation
    assert record.topic == DLQ
    assert record.key == b"app-young"
    assert record.header(RULE_NAME) == b"application_applicant_adult"
    assert record.header(RULE_MODE) == b"WRITE"
    assert (
        record.header(RULE_SUBJECT) == subject_for(contract("loan_application"), SETTINGS).encode()
    )
    assert record.header(RULE_TOPIC) == SETTINGS.topics.applications.encode()
    assert record.header(RULE_ERROR_FIELD) == b"applicant_age"
    assert record.header(RULE_ERROR_CLASS) == b"RuleViolationError"
    assert record.header(RULE_EXCEPTION)
    assert record.header(RULE_CONTENT_TYPE) == b"application/json"
    assert record.value is not None
    body = json.loads(record.value)
    assert body["application_id"] == "app-young" and body["applicant_age"] == 17
    # PII never reaches the DLQ in clear.
    assert b"Ada Lovelace" not in record.value
    assert body["applicant_name"].startswith(f"hmac-sha256:{SETTINGS.pii_key_id}:")


async def test_a_valid_record_writes_nothing(codec: Codec, producer: MemoryProducer) -> None:
    await codec.encode_application(sample_application())
    assert producer.sent == []


async def test_an_unconfirmed_dlq_write_fails_the_caller(
    codec: Codec, producer: MemoryProducer
) -> None:
    producer.unconfirmed.add(DLQ)
    with pytest.raises(RecorderError) as info:
        await codec.encode_application(BAD)
    assert info.value.retryable
    assert isinstance(info.value.__context__, RuleViolationError)
    assert producer.sent == []


async def test_without_a_writer_a_dlq_rule_is_a_config_error() -> None:
    codec = Codec(SETTINGS, offline_registry(SETTINGS))
    await codec.start()
    try:
        with pytest.raises(ConfigError) as info:
            await codec.encode_application(BAD)
        assert info.value.context["topics"] == [DLQ]
    finally:
        await codec.close()
