"""The codec over HTTP against the real registry, and the DLQ action against the broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from confluent_kafka import Consumer, Message

from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import RuleViolationError
from flightrec.contracts.events import CotEventBase
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.headers import (
    RULE_ERROR_CLASS,
    RULE_ERROR_FIELD,
    RULE_MODE,
    RULE_NAME,
    RULE_SUBJECT,
    RULE_TOPIC,
)
from flightrec.contracts.schema_files import contract, subject_for
from flightrec.contracts.settings import Settings
from flightrec.kafka.producer import ConfirmedProducer
from flightrec.testing.samples import (
    sample_application,
    sample_cot_events,
    sample_decision,
    sample_replay,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def codec(settings: Settings) -> AsyncIterator[Codec]:
    await asyncio.to_thread(apply_contracts, settings)
    producer = ConfirmedProducer(settings.producer_config())
    codec = Codec(settings, dlq_producer=producer)
    await codec.start()
    yield codec
    await codec.close()
    await producer.close()


async def test_every_contract_round_trips_through_the_registry(codec: Codec) -> None:
    events: list[CotEventBase] = sample_cot_events()
    assert [await codec.decode_cot(await codec.encode_cot(e)) for e in events] == events
    application = sample_application()
    assert (
        await codec.decode_application(await codec.encode_application(application)) == application
    )
    decision = sample_decision()
    assert await codec.decode_decision(await codec.encode_decision(decision)) == decision
    replay = sample_replay()
    assert await codec.decode_replay(await codec.encode_replay(replay)) == replay


async def test_cot_rule_violation_raises_without_dlq(codec: Codec) -> None:
    bad = sample_cot_events()[5].model_copy(update={"reasons": []})
    with pytest.raises(RuleViolationError) as info:
        await codec.encode_cot(bad)
    assert info.value.context["rule"] == "cot_decision_reasons"
    assert info.value.context["field"] == "decision.reasons"
    assert info.value.context["dlq_topic"] is None


def _read_one(settings: Settings, topic: str) -> Message:
    consumer = Consumer(settings.consumer_config(group_id=f"{topic}-reader"))
    try:
        consumer.subscribe([topic])
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                return msg
        raise AssertionError(f"nothing on {topic}")
    finally:
        consumer.close()


# Every application rule, with the DLQ action configured (``DLQ,ERROR``): one
# failing record each, which must reach the DLQ and still fail the caller.
APPLICATION_RULE_CASES = [
    ("application_amount_positive", "amount", {"amount": 0.0}),
    ("application_currency_iso4217", "currency", {"currency": "EUX"}),
    ("application_term_bounds", "term_months", {"term_months": 361}),
    ("application_applicant_adult", "applicant_age", {"applicant_age": 17}),
]


@pytest.mark.parametrize(
    ("rule", "field", "bad"), APPLICATION_RULE_CASES, ids=[c[0] for c in APPLICATION_RULE_CASES]
)
async def test_application_rule_violation_reaches_the_dlq_and_raises(
    codec: Codec, settings: Settings, rule: str, field: str, bad: dict[str, object]
) -> None:
    application_id = f"app-{rule}"
    bad_record = sample_application(application_id=application_id, **bad)
    with pytest.raises(RuleViolationError) as info:
        await codec.encode_application(bad_record)
    # The caller learns which rule failed on which field.
    assert info.value.context["rule"] == rule
    assert info.value.context["field"] == field
    assert rule in str(info.value) and field in str(info.value)
    dlq = settings.topics.applications_dlq
    assert info.value.context["dlq_topic"] == dlq

    msg = await asyncio.to_thread(_read_one, settings, dlq)
    assert msg.key() == application_id.encode()
    headers = dict(msg.headers() or [])
    assert headers[RULE_NAME] == rule.encode()
    assert headers[RULE_MODE] == b"WRITE"
    assert headers[RULE_SUBJECT] == subject_for(contract("loan_application"), settings).encode()
    assert headers[RULE_TOPIC] == settings.topics.applications.encode()
    assert headers[RULE_ERROR_FIELD] == field.encode()
    assert headers[RULE_ERROR_CLASS] == b"RuleViolationError"
    value = msg.value()
    assert isinstance(value, bytes)
    body = json.loads(value)
    assert body["application_id"] == application_id
    assert body[field] == bad[field]
    # PII never reaches the DLQ in clear.
    assert b"Ada Lovelace" not in value
    assert body["applicant_name"].startswith(f"hmac-sha256:{settings.pii_key_id}:")
    assert body["email"].startswith("hmac-sha256:")


async def test_a_nan_income_reaches_the_dlq_naming_the_generated_rule(
    codec: Codec, settings: Settings
) -> None:
    # NaN and infinity in any float field break the rule generated for it.
    bad = sample_application(application_id="app-nan-income", annual_income=float("nan"))
    with pytest.raises(RuleViolationError) as info:
        await codec.encode_application(bad)
    assert info.value.context["rule"] == "application_annual_income_finite"
    assert info.value.context["field"] == "annual_income"

    msg = await asyncio.to_thread(_read_one, settings, settings.topics.applications_dlq)
    assert msg.key() == b"app-nan-income"
    headers = dict(msg.headers() or [])
    assert headers[RULE_NAME] == b"application_annual_income_finite"
    assert headers[RULE_ERROR_FIELD] == b"annual_income"
    value = msg.value()
    assert isinstance(value, bytes)
    # Still JSON: the NaN is written as text, not as a bare token.
    assert (
        json.loads(value, parse_constant=lambda token: pytest.fail(token))["annual_income"] == "NaN"
    )
