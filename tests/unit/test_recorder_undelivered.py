"""``KafkaRecorder`` when nothing reaches a broker: every event it could not
deliver fails, to its own future and to ``confirm``, and none is left waiting.
Delivery to a real broker is covered by tests/integration/test_recorder.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from flightrec.contracts.errors import RecorderError
from flightrec.contracts.events import CotEventBase, Thought
from flightrec.contracts.settings import Settings
from flightrec.recorder.kafka_recorder import KafkaRecorder
from flightrec.testing.runs import synthetic_run, synthetic_trace_id


class JsonEncoder:
    """Stands in for the codec: the recorder only needs bytes."""

    async def encode_cot(self, event: CotEventBase) -> bytes:
        return event.model_dump_json().encode()


async def test_events_undelivered_at_close_fail_and_nothing_stays_pending(
    unreachable_broker: Settings,
) -> None:
    events = synthetic_run(synthetic_trace_id(1, "undelivered"))
    recorder = KafkaRecorder(unreachable_broker, JsonEncoder(), producer_overrides={"log_level": 0})
    await recorder.start()
    confirmations: list[Awaitable[None]] = [await recorder.emit(e) for e in events]
    assert recorder.pending() == len(events)

    await asyncio.wait_for(recorder.close(timeout_s=0.2), 10)

    assert recorder.pending() == 0
    for confirmation in confirmations:
        with pytest.raises(RecorderError) as info:
            await confirmation
        assert info.value.retryable
        assert info.value.context["trace_id"] == events[0].trace_id
    with pytest.raises(RecorderError):
        await recorder.confirm(events[0].trace_id, events[0].attempt)
    with pytest.raises(RecorderError, match="closed"):
        await recorder.emit(events[0])


async def test_a_record_the_producer_refuses_fails_its_event(unreachable_broker: Settings) -> None:
    events = synthetic_run(synthetic_trace_id(2, "refused"))
    thought = next(e for e in events if isinstance(e, Thought))
    big = thought.model_copy(update={"reasoning": "long " * 400})
    recorder = KafkaRecorder(
        unreachable_broker,
        JsonEncoder(),
        producer_overrides={"log_level": 0, "message.max.bytes": 1000},
    )
    async with recorder:
        refused = await recorder.emit(big)
        with pytest.raises(RecorderError) as info:
            await asyncio.wait_for(refused, 10)
        assert info.value.message == "producer refused the record"
        assert info.value.context["trace_id"] == big.trace_id
        assert info.value.context["seq"] == big.seq
        assert "too large" in info.value.context["kafka_error"]
        with pytest.raises(RecorderError):
            await recorder.confirm(big.trace_id, big.attempt)
        await recorder.confirm(big.trace_id, big.attempt)  # reported once, then cleared
