"""The attempt ledger on the real broker: numbers count up across ledger
instances (a restarted or new owner), across two writers taking turns on a
partition (a partition that moved), and after memory let go of an entry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flightrec.agents.attempts import AttemptLedger
from flightrec.contracts.settings import Settings
from flightrec.kafka.producer import ConfirmedProducer

pytestmark = pytest.mark.integration


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[ConfirmedProducer]:
    producer = ConfirmedProducer(settings.producer_config())
    await producer.start()
    yield producer
    await producer.close()


def ledger(settings: Settings, producer: ConfirmedProducer, **options: int) -> AttemptLedger:
    return AttemptLedger(
        settings.topics.attempts,
        settings.consumer_config(group_id="ledger-test"),
        producer,
        **options,  # type: ignore[arg-type]
    )


async def test_attempts_count_up_across_ledger_instances(
    settings: Settings, producer: ConfirmedProducer
) -> None:
    first = ledger(settings, producer)
    try:
        assert await first.begin("a" * 32, 0, 10) == 1
        assert await first.begin("a" * 32, 0, 10) == 2
        assert await first.begin("b" * 32, 0, 11) == 1
        assert await first.begin("c" * 32, 3, 10) == 1
    finally:
        first.close()
    # A new owner (a restarted worker) reads the partition back.
    second = ledger(settings, producer)
    try:
        assert await second.begin("a" * 32, 0, 10) == 3
        assert await second.begin("b" * 32, 0, 11) == 2
        assert await second.begin("c" * 32, 3, 10) == 2
        assert await second.begin("d" * 32, 0, 12) == 1
    finally:
        second.close()


async def test_two_writers_taking_turns_never_reuse_a_number(
    settings: Settings, producer: ConfirmedProducer
) -> None:
    left, right = ledger(settings, producer), ledger(settings, producer)
    try:
        numbers = []
        for turn in range(6):
            owner = left if turn % 2 == 0 else right
            numbers.append(await owner.begin("e" * 32, 2, 5))
        assert numbers == [1, 2, 3, 4, 5, 6]
    finally:
        left.close()
        right.close()


async def test_a_forgotten_entry_is_looked_up_not_restarted(
    settings: Settings, producer: ConfirmedProducer
) -> None:
    small = ledger(settings, producer, remember=2)
    try:
        for offset, trace in enumerate("fgh"):
            assert await small.begin(trace * 32, 1, offset) == 1
        # "f" was the oldest of three with room for two: memory let go of it.
        assert await small.begin("f" * 32, 1, 0) == 2
        # A new input past every offset seen is a first attempt without a lookup.
        assert await small.begin("i" * 32, 1, 3) == 1
    finally:
        small.close()


async def test_a_decision_recorded_by_one_owner_settles_the_redelivery_at_the_next(
    settings: Settings, producer: ConfirmedProducer
) -> None:
    first = ledger(settings, producer)
    try:
        assert await first.prior_decision("e" * 32, 1, 20) is None
        assert await first.begin("e" * 32, 1, 20) == 1
        await first.settle("e" * 32, 1, 1, 20, "DECLINE")
        assert await first.begin("f" * 32, 1, 21) == 1  # begun, never decided
    finally:
        first.close()
    # The partition moved: the new owner reads both entries back.
    second = ledger(settings, producer)
    try:
        assert await second.prior_decision("e" * 32, 1, 20) == (1, "DECLINE")
        assert await second.prior_decision("f" * 32, 1, 21) is None
        assert await second.begin("f" * 32, 1, 21) == 2
        # A later attempt voids an earlier decision as the last word.
        assert await second.begin("e" * 32, 1, 20) == 2
        assert await second.prior_decision("e" * 32, 1, 20) is None
    finally:
        second.close()
