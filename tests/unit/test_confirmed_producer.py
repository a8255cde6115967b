"""``ConfirmedProducer`` on a real librdkafka producer whose broker never answers:
the one backpressure policy (wait, never drop), refusal and delivery failure as
``RecorderError``, delivery reports handed to the loop, and a close that leaves
nothing waiting. Delivery that succeeds is covered by the integration tests."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message

from flightrec.contracts.errors import RecorderError
from flightrec.contracts.settings import Settings
from flightrec.kafka.producer import ConfirmedProducer


def _config(unreachable: Settings, **overrides: Any) -> dict[str, Any]:
    """The data-keeping producer settings, pointed at a port nobody listens on."""
    return unreachable.producer_config(**{"log_level": 0, **overrides})


async def test_a_record_librdkafka_refuses_raises_at_once(unreachable_broker: Settings) -> None:
    producer = ConfirmedProducer(_config(unreachable_broker, **{"message.max.bytes": 1000}))
    try:
        with pytest.raises(RecorderError) as info:
            await producer.send("t", b"x" * 5000, key="k")
        assert info.value.message == "producer refused the record"
        assert info.value.context["topic"] == "t"
        assert "too large" in info.value.context["kafka_error"]
    finally:
        await producer.close(timeout_s=0.1)


async def test_a_full_queue_waits_and_close_fails_what_was_never_delivered(
    unreachable_broker: Settings,
) -> None:
    # librdkafka holds one record: the second send must wait for space, not drop.
    producer = ConfirmedProducer(_config(unreachable_broker, **{"queue.buffering.max.messages": 1}))
    first = await producer.send("t", b"one", key="k")
    second = asyncio.create_task(producer.send("t", b"two", key="k"))
    await asyncio.sleep(0.2)
    assert not second.done()  # still waiting for queue space
    assert not first.done()  # no broker: not confirmed

    await producer.close(timeout_s=0.2)

    # Purged at close: the queued record fails its delivery, nothing is left pending.
    with pytest.raises(RecorderError) as info:
        await asyncio.wait_for(first, 5)
    assert info.value.message == "broker did not confirm delivery"
    assert info.value.context["topic"] == "t"
    # The waiting send gives up with an error rather than queue after the purge.
    with pytest.raises(RecorderError, match="closed before the record was queued"):
        await asyncio.wait_for(second, 5)
    with pytest.raises(RecorderError, match="closed"):
        await producer.send("t", b"three")


async def test_a_delivery_that_times_out_fails_its_future(unreachable_broker: Settings) -> None:
    producer = ConfirmedProducer(
        _config(unreachable_broker, **{"delivery.timeout.ms": 200, "linger.ms": 0})
    )
    try:
        with pytest.raises(RecorderError) as info:
            await asyncio.wait_for(producer.send_and_wait("t", b"v", key="k"), 10)
        assert info.value.message == "broker did not confirm delivery"
        assert info.value.context["kafka_error"]
    finally:
        await producer.close(timeout_s=0.1)


async def test_delivery_callbacks_run_on_the_loop_with_their_context(
    unreachable_broker: Settings,
) -> None:
    producer = ConfirmedProducer(
        _config(unreachable_broker, **{"delivery.timeout.ms": 200, "linger.ms": 0})
    )
    loop_thread = threading.get_ident()
    seen: list[tuple[str, bool, int]] = []
    done = asyncio.Event()

    def delivered(context: str, err: KafkaError | None, msg: Message) -> None:
        seen.append((context, err is not None, threading.get_ident()))
        if len(seen) == 3:
            done.set()

    try:
        for name in ("a", "b", "c"):
            await producer.produce("t", name.encode(), key="k", on_delivery=delivered, context=name)
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await producer.close(timeout_s=0.1)
    assert seen == [(name, True, loop_thread) for name in ("a", "b", "c")]


async def test_client_errors_are_logged_as_warnings(
    caplog: pytest.LogCaptureFixture, unreachable_broker: Settings
) -> None:
    producer = ConfirmedProducer(_config(unreachable_broker))
    with caplog.at_level(logging.WARNING, logger="flightrec.kafka.producer"):
        try:
            await producer.start()
            for _ in range(100):
                if any("kafka client" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.05)
        finally:
            await producer.close(timeout_s=0.1)
    warnings = [r for r in caplog.records if "kafka client" in r.getMessage()]
    assert warnings and all(r.levelno == logging.WARNING for r in warnings)
