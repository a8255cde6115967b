"""Read ``agent.cot`` back: raw records by offset range or time range, decoded events,
grouped histories.

The consumer is ``assign()``-based and never commits: reading the log for
replay must not move any consumer group. Every blocking librdkafka call runs in
a worker thread (``asyncio.to_thread``); one lock serialises use of the
consumer, which is not safe to share between threads at once. Decoding goes
through the codec, which resolves events written under older schema versions
to the current model, so one read can mix schema versions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from confluent_kafka import Consumer, TopicPartition

from flightrec.contracts.chain import verify_chain
from flightrec.contracts.errors import DecodeError, ReplayError
from flightrec.contracts.events import CotEvent
from flightrec.contracts.headers import COT_KIND, header_value
from flightrec.contracts.settings import Settings
from flightrec.kafka.topics import watermarks
from flightrec.replay.history import ChainVerifier, RunHistory, build_histories

__all__ = [
    "CotDecoder",
    "CotReader",
    "RawRecord",
    "Segment",
    "UndecodableRecord",
]

T = TypeVar("T")

_POLL_TIMEOUT_S = 1.0
# Consecutive empty polls before a read gives up on a partition that claims to
# hold more: a broker that stays silent this long is reported, not waited on.
_MAX_EMPTY_POLLS = 15


class CotDecoder(Protocol):
    """What the reader needs from the codec (``flightrec.contracts.codec.Codec``)."""

    async def decode_cot(self, data: bytes) -> CotEvent: ...


@dataclass(frozen=True)
class Segment:
    """An inclusive offset range of one partition."""

    partition: int
    first: int
    last: int


@dataclass(frozen=True)
class RawRecord:
    """One ``agent.cot`` record as stored: position, key, kind header, bytes."""

    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    kind: str | None
    value: bytes | None


@dataclass(frozen=True)
class UndecodableRecord:
    """A record the codec could not decode; reported, never skipped silently."""

    partition: int
    offset: int
    key: str | None
    error: str


def _raw(msg: Any) -> RawRecord:
    key = msg.key()
    kind = header_value(msg.headers(), COT_KIND)
    _, ts = msg.timestamp()
    return RawRecord(
        partition=msg.partition(),
        offset=msg.offset(),
        timestamp_ms=ts,
        key=key.decode() if isinstance(key, bytes) else key,
        kind=None if kind is None else kind.decode(),
        value=msg.value(),
    )


class CotReader:
    """Reads ``agent.cot`` (or ``topic``) by offsets, time, trace or business key.

    Use as ``async with CotReader(settings, codec) as reader``. ``codec`` may be
    None for raw reads only.
    """

    def __init__(
        self,
        settings: Settings,
        codec: CotDecoder | None = None,
        *,
        topic: str | None = None,
        chain_verifier: ChainVerifier | None = verify_chain,
    ) -> None:
        self._settings = settings
        self._codec = codec
        self.topic = topic or settings.topics.cot
        self._chain_verifier = chain_verifier
        self._consumer: Consumer | None = None
        self._lock = asyncio.Lock()
        self.undecodable: list[UndecodableRecord] = []

    # ------------------------------------------------------------- lifecycle

    def _consumer_sync(self) -> Consumer:
        if self._consumer is None:
            # fetch.wait.max.ms is low because a lookup switches partitions: a new
            # assignment otherwise waits for the previous partition's long-poll
            # fetch to expire (measured: lookup time == fetch.wait.max.ms). The
            # consumer is unassigned between reads, so it never idles in a fetch loop.
            config = self._settings.consumer_config(
                group_id=f"{self._settings.app_id}-replay-reader",
                **{"enable.auto.offset.store": False, "fetch.wait.max.ms": 2},
            )
            self._consumer = Consumer(config)
        return self._consumer

    async def __aenter__(self) -> CotReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the consumer (it never joined a group, so nothing is committed)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await asyncio.to_thread(consumer.close)

    # ------------------------------------------------------------ raw reads

    def partitions_sync(self) -> list[int]:
        """Partition ids of the topic (empty when the topic does not exist)."""
        consumer = self._consumer_sync()
        metadata = consumer.list_topics(self.topic, timeout=10)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return []
        return sorted(topic.partitions)

    def watermarks_sync(self, partition: int) -> tuple[int, int]:
        """(low, high) offsets of a partition; high is the next offset to be written."""
        return watermarks(self._consumer_sync(), self.topic, partition)

    def offsets_for_time_sync(self, partition: int, when: datetime) -> int:
        """First offset of ``partition`` with a timestamp at or after ``when``."""
        consumer = self._consumer_sync()
        wanted = TopicPartition(self.topic, partition, int(when.timestamp() * 1000))
        (found,) = consumer.offsets_for_times([wanted], timeout=10)
        if found.offset < 0:  # no such message: everything is older
            return self.watermarks_sync(partition)[1]
        return int(found.offset)

    def iter_segment_sync(
        self,
        segment: Segment,
        *,
        keys: frozenset[str] | None = None,
        accept: Callable[[RawRecord], bool] | None = None,
        clamp: bool = True,
        batch_size: int = 5000,
    ) -> Iterator[list[RawRecord]]:
        """Records of an inclusive offset range, in batches (bounded memory).

        ``clamp`` first asks the broker for the partition's watermarks; without
        it (the caller knows the range exists, e.g. from the index) a lookup
        saves that round trip, and a range already deleted by retention ends at
        the first record past it.
        """
        consumer = self._consumer_sync()
        first, last = segment.first, segment.last
        if clamp:
            low, high = self.watermarks_sync(segment.partition)
            first, last = max(first, low), min(last, high - 1)
        if first > last:
            return
        consumer.assign([TopicPartition(self.topic, segment.partition, first)])
        try:
            empty = 0
            position = first
            while position <= last:
                batch = consumer.consume(
                    num_messages=min(batch_size, last - position + 1), timeout=_POLL_TIMEOUT_S
                )
                if not batch:
                    empty += 1
                    if empty >= _MAX_EMPTY_POLLS:
                        raise ReplayError(
                            "the broker returned nothing for an offset range it reports",
                            topic=self.topic,
                            partition=segment.partition,
                            offset=position,
                        )
                    continue
                empty = 0
                records: list[RawRecord] = []
                for msg in batch:
                    if msg.error() is not None:
                        raise ReplayError(
                            "error reading the CoT log",
                            topic=self.topic,
                            partition=segment.partition,
                            error=str(msg.error()),
                        )
                    offset: int = msg.offset() or 0
                    position = offset + 1
                    if offset > last:
                        break
                    record = _raw(msg)
                    if keys is not None and record.key not in keys:
                        continue
                    if accept is not None and not accept(record):
                        continue
                    records.append(record)
                if records:
                    yield records
        finally:
            consumer.unassign()

    def read_segment_sync(
        self,
        segment: Segment,
        *,
        keys: frozenset[str] | None = None,
        accept: Callable[[RawRecord], bool] | None = None,
        clamp: bool = True,
    ) -> list[RawRecord]:
        """Records of an inclusive offset range, as one list."""
        records: list[RawRecord] = []
        for batch in self.iter_segment_sync(segment, keys=keys, accept=accept, clamp=clamp):
            records.extend(batch)
        return records

    def scan_segments_sync(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[Segment]:
        """One segment per partition covering ``[since, until]`` (whole log when None),
        bounded by the high-water mark at the time of the call."""
        segments = []
        for partition in self.partitions_sync():
            low, high = self.watermarks_sync(partition)
            first = low if since is None else max(low, self.offsets_for_time_sync(partition, since))
            last = high - 1
            if until is not None:
                end = self.offsets_for_time_sync(partition, until)
                # offsets_for_times finds the first record at/after `until`; records
                # stamped exactly `until` are in range, so scan to it and filter by time.
                last = min(last, end)
            if first <= last:
                segments.append(Segment(partition, first, last))
        return segments

    async def read_raw(
        self,
        segments: Iterable[Segment],
        *,
        keys: frozenset[str] | None = None,
        accept: Callable[[RawRecord], bool] | None = None,
        clamp: bool = True,
    ) -> list[RawRecord]:
        """Raw records of the segments, in partition order then offset order."""
        wanted = list(segments)
        async with self._lock:
            return await asyncio.to_thread(self._read_many_sync, wanted, keys, accept, clamp)

    def _read_many_sync(
        self,
        segments: Sequence[Segment],
        keys: frozenset[str] | None,
        accept: Callable[[RawRecord], bool] | None,
        clamp: bool,
    ) -> list[RawRecord]:
        records: list[RawRecord] = []
        for segment in segments:
            records.extend(self.read_segment_sync(segment, keys=keys, accept=accept, clamp=clamp))
        return records

    async def scan_segments(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[Segment]:
        """Async :meth:`scan_segments_sync`."""
        async with self._lock:
            return await asyncio.to_thread(self.scan_segments_sync, since=since, until=until)

    # --------------------------------------------------------------- decoded

    async def decode(self, records: Iterable[RawRecord]) -> list[CotEvent]:
        """Decode records; failures are kept in :attr:`undecodable`, never dropped silently."""
        if self._codec is None:
            raise ReplayError("this reader was built without a codec; it can only read raw")
        events: list[CotEvent] = []
        for record in records:
            if record.value is None:
                continue
            try:
                events.append(await self._codec.decode_cot(record.value))
            except DecodeError as exc:
                self.undecodable.append(
                    UndecodableRecord(record.partition, record.offset, record.key, str(exc))
                )
        return events

    async def read_events(
        self,
        segments: Iterable[Segment],
        *,
        keys: frozenset[str] | None = None,
        clamp: bool = True,
    ) -> list[CotEvent]:
        """Decoded events of the segments (only ``keys`` when given)."""
        return await self.decode(await self.read_raw(segments, keys=keys, clamp=clamp))

    def histories(self, events: Iterable[CotEvent]) -> list[RunHistory]:
        """Group decoded events into checked histories."""
        return build_histories(events, chain_verifier=self._chain_verifier)

    async def read_histories(
        self,
        *,
        segments: Iterable[Segment] | None = None,
        trace_ids: Iterable[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        business_key: str | None = None,
        agent: str | None = None,
        agent_version: str | None = None,
    ) -> list[RunHistory]:
        """Histories selected by trace id, time range, business key, agent or version.

        Without ``segments`` this scans the partitions (bounded by ``since`` /
        ``until``); :class:`~flightrec.replay.index.TraceIndex` narrows a lookup to a
        trace's own offsets instead.
        """
        keys = frozenset(trace_ids) if trace_ids is not None else None
        if segments is None:
            segments = await self.scan_segments(since=since, until=until)
        since_ms = int(since.timestamp() * 1000) if since is not None else None
        until_ms = int(until.timestamp() * 1000) if until is not None else None

        def in_time(record: RawRecord) -> bool:
            if since_ms is not None and record.timestamp_ms < since_ms:
                return False
            return until_ms is None or record.timestamp_ms <= until_ms

        raw = await self.read_raw(segments, keys=keys, accept=in_time)
        histories = self.histories(await self.decode(raw))
        selected = []
        for history in histories:
            first = history.first_event
            if business_key is not None and history.business_key != business_key:
                continue
            if agent is not None and first.agent != agent:
                continue
            if agent_version is not None and first.agent_version != agent_version:
                continue
            selected.append(history)
        return selected

    async def run_sync(self, fn: Callable[[CotReader], T]) -> T:
        """Run ``fn(self)`` in a worker thread with exclusive use of the consumer."""
        async with self._lock:
            return await asyncio.to_thread(fn, self)
