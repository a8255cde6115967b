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
from flightrec.contracts.errors import (
    ConfigError,
    ContractError,
    RecorderError,
    RuleViolationError,
)
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


async def test_a_rule_whose_evaluation_throws_is_dead_lettered_before_the_caller_hears(
    producer: MemoryProducer,
) -> None:
    # confluent-kafka also runs a rule's onFailure action when evaluating the
    # rule throws (here: a field the record does not have), not only when its
    # condition is false. That record must be confirmed before the caller
    # hears of the failure too, not left queued until some later violation.
    from confluent_kafka.schema_registry import (
        Rule,
        RuleKind,
        RuleMode,
        RuleParams,
        RuleSet,
        Schema,
        SchemaRegistryClient,
    )

    from flightrec.contracts.rules import DLQ_KEY_PARAM, DLQ_TOPIC_PARAM
    from flightrec.contracts.schema_files import load_schemas, schema_text

    spec = contract("loan_application")
    throwing = Rule(
        name="application_throws",
        doc=None,
        kind=RuleKind.CONDITION,
        mode=RuleMode.WRITE,
        type="CEL",
        tags=None,
        params=RuleParams({DLQ_TOPIC_PARAM: DLQ, DLQ_KEY_PARAM: "application_id"}),
        expr="message.no_such_field == 1",
        on_success=None,
        on_failure="DLQ",
        disabled=False,
    )
    client = SchemaRegistryClient.new_client({"url": "mock://throwing-rule"})
    client.register_schema(
        subject_for(spec, SETTINGS),
        Schema(
            schema_text(load_schemas()["loan_application"]),
            "AVRO",
            rule_set=RuleSet(None, [throwing]),
        ),
    )
    codec = Codec(SETTINGS, client, contracts=("loan_application",), dlq_producer=producer)
    await codec.start()
    try:
        with pytest.raises(ContractError):
            await codec.encode_application(sample_application(application_id="app-throws"))
        assert [r.key for r in producer.on(DLQ)] == [b"app-throws"]
        assert producer.on(DLQ)[0].header(RULE_NAME) == b"application_throws"
    finally:
        await codec.close()
