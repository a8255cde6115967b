"""``AttemptLedger``: which attempt of a run this is, across crashes and workers.

A re-processed input keeps its trace id and gets ``attempt + 1`` (docs/design.md,
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

Once a run's decision is confirmed, :meth:`AttemptLedger.settle` writes a
second entry for the trace, ``decided`` with the attempt and the outcome; a
re-delivered input whose trace has one is settled from it
(:meth:`AttemptLedger.prior_decision`) instead of being run again: a crash
between the decision and the commit no longer costs a model call or yields a
second decision. Compaction keeps the latest entry per trace, which is that
marker.

Bounded: only uncommitted inputs can be re-delivered, and those are recent. A
new owner reads a partition from ``lookback`` ago (not from the beginning), the
topic deletes entries older than its retention, and memory keeps the last
``remember`` traces per partition. Each entry carries its input offset, so a
re-delivered input whose entry was forgotten is recognised (its offset is not
new) and looked up in the topic again instead of restarting at attempt 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from flightrec.contracts.errors import RecorderError
from flightrec.kafka.producer import ConfirmedProducer
from flightrec.kafka.topics import watermarks

__all__ = ["AttemptLedger"]

log = logging.getLogger(__name__)

# A ledger partition holds one small record per run; catching up on it takes
# milliseconds. Minutes mean the broker is gone, and the run must not start.
_CATCH_UP_TIMEOUT_S = 60.0


@dataclass
class _PartitionState:
    """What the ledger knows of one partition."""

    # trace id -> highest attempt, least recently written first
    attempts: OrderedDict[str, int] = field(default_factory=OrderedDict)
    # trace id -> (attempt, outcome) of its confirmed decision
    decided: OrderedDict[str, tuple[int, str]] = field(default_factory=OrderedDict)
    next_offset: int | None = None  # next ledger offset to read; None: not read yet
    max_input_offset: int = -1
    forgot: bool = False  # whether memory has let go of any entry


class AttemptLedger:
    """Counts attempts per trace id in a compacted Kafka topic."""

    def __init__(
        self,
        topic: str,
        consumer_config: dict[str, Any],
        producer: ConfirmedProducer,
        *,
        lookback_s: float = 24 * 3600.0,
        remember: int = 50_000,
    ) -> None:
        self._topic = topic
        # Catch-up reads are short and rare; a low fetch wait keeps each one
        # from idling in the broker's long poll. Nothing is committed: the
        # ledger always knows its own position.
        self._consumer = Consumer(
            {**consumer_config, "fetch.wait.max.ms": 10, "enable.auto.commit": False}
        )
        self._producer = producer
        self._lookback_s = lookback_s
        self._remember = max(1, remember)
        self._partitions: dict[int, _PartitionState] = {}
        # A trace lives in one partition, so one lock per partition keeps
        # read-increment-write atomic per trace while partitions run in parallel;
        # the consumer itself is used by one thread at a time.
        self._partition_locks: dict[int, asyncio.Lock] = {}
        self._consumer_lock = asyncio.Lock()

    def _state(self, partition: int) -> _PartitionState:
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _PartitionState()
        return state

    async def prior_decision(
        self, trace_id: str, partition: int, input_offset: int
    ) -> tuple[int, str] | None:
        """``(attempt, outcome)`` of a confirmed decision of ``trace_id``, if the
        ledger holds one (the input was decided before and re-delivered)."""
        state = self._state(partition)
        if state.next_offset is not None and trace_id not in state.attempts and not state.forgot:
            # A trace this ledger has never seen begin: the common case,
            # answered without a broker round trip (the catch-up would be
            # serialised with every other run's). Decided by another worker
            # since the partition was last ours, it runs again as a further
            # attempt: at-least-once, never a wrong answer.
            return None
        lock = self._partition_locks.setdefault(partition, asyncio.Lock())
        async with lock:
            async with self._consumer_lock:
                # Another worker may have decided it before the partition moved.
                await asyncio.to_thread(self._catch_up, partition)
            return state.decided.get(trace_id)

    async def settle(
        self, trace_id: str, partition: int, attempt: int, input_offset: int, outcome: str
    ) -> None:
        """Record that ``attempt`` of ``trace_id`` decided ``outcome`` (confirmed).

        No partition lock: nothing is read first, and holding the lock across
        the broker's confirmation would queue every run of the partition behind
        it."""
        await self._write(trace_id, partition, attempt, input_offset, outcome)

    async def begin(self, trace_id: str, partition: int, input_offset: int) -> int:
        """Record and return the attempt number for a new run of ``trace_id``
        (the input record at ``input_offset`` of input partition ``partition``)."""
        lock = self._partition_locks.setdefault(partition, asyncio.Lock())
        async with lock:
            state = self._state(partition)
            async with self._consumer_lock:
                await asyncio.to_thread(self._catch_up, partition)
                previous = state.attempts.get(trace_id)
                if previous is None and state.forgot and input_offset <= state.max_input_offset:
                    # A re-delivery whose entry memory let go of: ask the topic.
                    previous = await asyncio.to_thread(self._look_up, partition, trace_id)
            attempt = (previous or 0) + 1
            await self._write(trace_id, partition, attempt, input_offset)
            return attempt

    async def _write(
        self,
        trace_id: str,
        partition: int,
        attempt: int,
        input_offset: int,
        decided: str | None = None,
    ) -> None:
        """Write one entry (an attempt begun, or with ``decided`` its outcome),
        confirmed, and remember it."""
        entry: dict[str, object] = {"attempt": attempt, "offset": input_offset}
        if decided is not None:
            entry["decided"] = decided
        written = await self._producer.send_and_wait(
            self._topic, json.dumps(entry).encode(), key=trace_id.encode(), partition=partition
        )
        state = self._state(partition)
        self._remember_entry(state, trace_id, attempt, input_offset, decided)
        offset = written.offset()
        if offset is not None and state.next_offset == offset:
            # Our entry is the next one in the partition: already known, so the
            # next catch-up is a watermark query, not a fetch. (Only when it is
            # exactly the next: a catch-up running meanwhile can only make the
            # ledger read an entry twice, which changes nothing.)
            state.next_offset = offset + 1

    def _remember_entry(
        self,
        state: _PartitionState,
        trace_id: str,
        attempt: int,
        input_offset: int,
        decided: str | None = None,
    ) -> None:
        known = state.attempts.pop(trace_id, 0)
        state.attempts[trace_id] = max(known, attempt)
        state.max_input_offset = max(state.max_input_offset, input_offset)
        if decided is not None:
            state.decided.pop(trace_id, None)
            state.decided[trace_id] = (attempt, decided)
        elif attempt > state.decided.get(trace_id, (0, ""))[0]:
            # A later attempt began: that decision is no longer the last word.
            state.decided.pop(trace_id, None)
        while len(state.attempts) > self._remember:
            state.attempts.popitem(last=False)
            state.forgot = True
        while len(state.decided) > self._remember:
            state.decided.popitem(last=False)

    def _start_offset(self, partition: int, low: int, high: int) -> int:
        """Where a first read of ``partition`` begins: ``lookback`` ago."""
        since_ms = int((time.time() - self._lookback_s) * 1000)
        (found,) = self._consumer.offsets_for_times(
            [TopicPartition(self._topic, partition, since_ms)], timeout=10
        )
        if found.offset < 0:  # nothing that recent: every entry is older
            return high
        return max(low, found.offset)

    def _catch_up(self, partition: int) -> None:
        """Read ledger partition ``partition`` up to its high watermark (blocking)."""
        state = self._state(partition)
        low, high = watermarks(self._consumer, self._topic, partition)
        if state.next_offset is None:
            state.next_offset = self._start_offset(partition, low, high)
        position = max(state.next_offset, low)  # retention may have removed the start
        if position >= high:
            state.next_offset = max(position, high)
            return
        for trace, attempt, input_offset, offset, decided in self._read(partition, position, high):
            self._remember_entry(state, trace, attempt, input_offset, decided)
            state.next_offset = offset + 1
        state.next_offset = max(state.next_offset, high)

    def _look_up(self, partition: int, trace_id: str) -> int | None:
        """The highest attempt of ``trace_id`` in the lookback window (blocking, rare)."""
        low, high = watermarks(self._consumer, self._topic, partition)
        found: int | None = None
        for trace, attempt, _, _, _ in self._read(
            partition, self._start_offset(partition, low, high), high
        ):
            if trace == trace_id:
                found = max(found or 0, attempt)
        return found

    def _read(
        self, partition: int, start: int, high: int
    ) -> Iterator[tuple[str, int, int, int, str | None]]:
        """``(trace id, attempt, input offset, ledger offset, decided outcome or
        None)`` from ``start`` to ``high``."""
        if start >= high:
            return
        self._consumer.assign([TopicPartition(self._topic, partition, start)])
        reached = start - 1
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
            if msg is None or msg.error() is not None:
                continue
            offset = msg.offset()
            if offset is None:
                continue
            reached = offset
            key, value = msg.key(), msg.value()
            if key is None or not value:
                continue
            try:
                entry = json.loads(value)
                attempt, input_offset = int(entry["attempt"]), int(entry["offset"])
                decided = entry.get("decided")
            except (ValueError, KeyError, TypeError):
                log.warning(
                    "skipping unreadable ledger entry at %s/%d@%d", self._topic, partition, offset
                )
                continue
            key_text = key.decode() if isinstance(key, bytes) else str(key)
            yield (
                key_text,
                attempt,
                input_offset,
                offset,
                (str(decided) if decided is not None else None),
            )

    def close(self) -> None:
        self._consumer.close()
