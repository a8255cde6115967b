"""Helpers of the recorder's integration tests: read a topic back, run many runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from flightrec.contracts.chain import verify_chain
from flightrec.contracts.events import CotEvent
from flightrec.contracts.settings import Settings
from flightrec.recorder.kafka_recorder import KafkaRecorder


@dataclass(frozen=True)
class Record:
    """One record as the broker holds it."""

    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: dict[str, bytes]


def read_topic(settings: Settings, topic: str, timeout_s: float = 60.0) -> list[Record]:
    """Every record of ``topic`` up to its current end (blocking; call in a thread)."""
    consumer = Consumer(settings.consumer_config(group_id=f"{topic}-check"))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        partitions = sorted(metadata.topics[topic].partitions)
        ends: dict[int, int] = {}
        for p in partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions if ends[p] > 0])
        records: list[Record] = []
        remaining = {p for p, high in ends.items() if high > 0}
        while remaining:
            msg = consumer.poll(timeout_s)
            assert msg is not None, f"timed out reading {topic}; partitions left {remaining}"
            assert msg.error() is None, msg.error()
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            records.append(
                Record(
                    partition=partition,
                    offset=offset,
                    key=msg.key() or b"",  # type: ignore[arg-type]
                    value=msg.value() or b"",  # type: ignore[arg-type]
                    headers={k: v or b"" for k, v in (msg.headers() or [])},  # type: ignore[misc,str-unpack]
                )
            )
            if offset + 1 >= ends[partition]:
                remaining.discard(partition)
        return records
    finally:
        consumer.close()


async def record_runs(
    recorder: KafkaRecorder,
    runs: Sequence[Sequence[CotEvent]],
    *,
    pause_s: float = 0.0,
) -> None:
    """Emit every run concurrently (each in its own order), then confirm them all."""

    async def one(events: Sequence[CotEvent]) -> None:
        confirmations: list[Awaitable[None]] = []
        for event in events:
            confirmations.append(await recorder.emit(event))
            await asyncio.sleep(pause_s)  # let the other runs interleave
        for confirmation in confirmations:
            await confirmation
        await recorder.confirm(events[0].trace_id, events[0].attempt)

    await asyncio.gather(*(one(run) for run in runs))


def check_traces(
    decoded: Sequence[tuple[Record, CotEvent]], expected: dict[str, int]
) -> dict[str, list[CotEvent]]:
    """Per trace: one partition, key = trace id, seq 0..n-1 in offset order, chain intact."""
    by_trace: dict[str, list[tuple[Record, CotEvent]]] = {}
    for record, event in decoded:
        by_trace.setdefault(event.trace_id, []).append((record, event))
    assert set(by_trace) == set(expected)
    out: dict[str, list[CotEvent]] = {}
    for trace_id, items in by_trace.items():
        assert {r.partition for r, _ in items} == {items[0][0].partition}, trace_id
        assert {r.key for r, _ in items} == {trace_id.encode()}
        items.sort(key=lambda item: item[0].offset)
        events = [e for _, e in items]
        assert [e.seq for e in events] == list(range(expected[trace_id])), trace_id
        report = verify_chain(events)
        assert report.ok, report.describe()
        out[trace_id] = events
    return out
