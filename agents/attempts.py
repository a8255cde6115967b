"""``AttemptLedger``: which attempt of a run this is, across crashes and workers.

A re-processed input keeps its trace id and gets ``attempt + 1`` (DESIGN.md,
Guarantees). The worker acks an input only after everything of the run is
confirmed, so a re-delivery means an earlier attempt may have written events.
Before a run starts, the ledger writes ``trace_id -> attempt`` to a compacted
topic and waits for the broker's confirmation; after a SIGKILL the next owner
reads it back and continues with the next number.

The ledger topic has as many partitions as the input topic and an entry is
written to the partition of its input event, so the only writer of ledger
partition *p* is the current owner of input partition *p*. Before each attempt
the ledger catches up on that partition (usually just a watermark query), which
keeps it correct when partitions move between workers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from contracts.errors import RecorderError
from contracts.producer import ConfirmedProducer
from contracts.topics import watermarks

__all__ = ["AttemptLedger"]

# A ledger partition holds one small record per run; catching up on it takes
# milliseconds. Minutes mean the broker is gone, and the run must not start.
_CATCH_UP_TIMEOUT_S = 60.0


class AttemptLedger:
    """Counts attempts per trace id in a compacted Kafka topic."""

    def __init__(
        self, topic: str, consumer_config: dict[str, Any], producer: ConfirmedProducer
    ) -> None:
        self._topic = topic
        # Catch-up reads are short and rare; a low fetch wait keeps each one
        # from idling in the broker's long poll. Nothing is committed: the
        # ledger always knows its own position.
        self._consumer = Consumer(
            {**consumer_config, "fetch.wait.max.ms": 10, "enable.auto.commit": False}
        )
        self._producer = producer
        self._attempts: dict[str, int] = {}
        self._next_offset: dict[int, int] = {}
        # A trace lives in one partition, so one lock per partition keeps
        # read-increment-write atomic per trace while partitions run in parallel;
        # the consumer itself is used by one thread at a time.
        self._partition_locks: dict[int, asyncio.Lock] = {}
        self._consumer_lock = asyncio.Lock()

    async def begin(self, trace_id: str, partition: int) -> int:
        """Record and return the attempt number for a new run of ``trace_id``."""
        lock = self._partition_locks.setdefault(partition, asyncio.Lock())
        async with lock:
            async with self._consumer_lock:
                await asyncio.to_thread(self._catch_up, partition)
            attempt = self._attempts.get(trace_id, 0) + 1
            written = await self._producer.send_and_wait(
                self._topic, str(attempt).encode(), key=trace_id.encode(), partition=partition
            )
            self._attempts[trace_id] = attempt
            offset = written.offset()
            if offset is not None and self._next_offset.get(partition) == offset:
                # Our record is the next one in the partition: already known, so
                # the next catch-up is a watermark query and nothing more.
                self._next_offset[partition] = offset + 1
            return attempt

    def _catch_up(self, partition: int) -> None:
        """Read ledger partition ``partition`` up to its high watermark (blocking)."""
        low, high = watermarks(self._consumer, self._topic, partition)
        position = self._next_offset.get(partition, low)
        if position >= high:
            self._next_offset[partition] = max(position, high)
            return
        position = max(position, low)  # compaction may have removed the start
        self._consumer.assign([TopicPartition(self._topic, partition, position)])
        reached = position - 1
        deadline = time.monotonic() + _CATCH_UP_TIMEOUT_S
        while reached < high - 1:
            if time.monotonic() > deadline:
                raise RecorderError(
                    "attempt ledger did not catch up",
                    topic=self._topic,
                    partition=partition,
                    reached=reached,
                    high_watermark=high,
                    retryable=True,
                )
            msg = self._consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                continue
            key = msg.key()
            value = msg.value()
            if key is not None and value:
                trace = key.decode()
                self._attempts[trace] = max(self._attempts.get(trace, 0), int(value.decode()))
            offset = msg.offset()
            if offset is not None:
                reached = offset
        self._next_offset[partition] = max(high, reached + 1)

    def close(self) -> None:
        self._consumer.close()
