"""The registry's storage: one compacted, single-partition Kafka topic.

Every state change is a JSON record written with an idempotent ``acks=all``
producer; the registry answers only after the broker confirmed it. At start-up
the topic is read from the beginning to its end to rebuild the state.

Single writer: one registry instance per topic. Two instances writing the same
topic could hand out the same id or version; Confluent solves that with leader
election, which a local development registry does not need.

confluent-kafka's calls block, so each runs in a worker thread
(``asyncio.to_thread``); the event loop never waits on the broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from flightrec.contracts.errors import StackError
from flightrec.kafka.topics import watermarks

__all__ = ["KafkaLog", "MemoryLog", "Record", "Storage", "StorageError"]

_log = logging.getLogger(__name__)

# (key, value); value None is a tombstone.
Record = tuple[dict[str, Any], dict[str, Any] | None]

_TIMEOUT_S = 30.0


class StorageError(RuntimeError):
    """The storage topic could not be read or a write was not confirmed."""


class Storage(Protocol):
    """Where the registry's records live (:class:`KafkaLog`, or :class:`MemoryLog`)."""

    async def open(self) -> list[Record]:
        """Prepare the storage and return every record written so far, in order."""
        ...

    async def write(self, records: Sequence[Record]) -> None:
        """Append ``records``; return only once they are durable."""
        ...

    async def close(self) -> None:
        """Release the storage."""
        ...


class MemoryLog:
    """A storage kept in a list: for unit tests of the registry's rules, no broker.

    Records are JSON round-tripped, as Kafka would, so nothing shares objects
    with the state; ``fail_next`` makes the next write fail like a broker error.
    Reusing one instance across two services is a restart.
    """

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []
        self.fail_next = False

    async def open(self) -> list[Record]:
        """Every record written so far."""
        return [(json.loads(k), None if v is None else json.loads(v)) for k, v in self.records]

    async def write(self, records: Sequence[Record]) -> None:
        """Append, or fail once if ``fail_next`` is set."""
        if self.fail_next:
            self.fail_next = False
            raise StorageError("write refused (MemoryLog.fail_next)")
        for key, value in records:
            self.records.append((_encode(key), None if value is None else _encode(value)))

    async def close(self) -> None:
        """Nothing to release."""


def _encode(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class KafkaLog:
    """Reads and appends the registry's records in ``topic`` on ``bootstrap``."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        kafka_config: Mapping[str, Any] | None = None,
        replication_factor: int = -1,
    ) -> None:
        self._topic = topic
        self._base: dict[str, Any] = {"bootstrap.servers": bootstrap, **(kafka_config or {})}
        self._replication_factor = replication_factor
        self._producer: Producer | None = None

    @property
    def topic(self) -> str:
        """The storage topic's name."""
        return self._topic

    async def open(self) -> list[Record]:
        """Create the topic if missing, then return every record in it, in order."""
        await asyncio.to_thread(self._ensure_topic)
        records = await asyncio.to_thread(self._read_all)
        self._producer = Producer(
            {
                **self._base,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 0,
                "delivery.timeout.ms": int(_TIMEOUT_S * 1000),
            }
        )
        return records

    async def write(self, records: Sequence[Record]) -> None:
        """Append ``records`` and return once the broker confirmed all of them."""
        if self._producer is None:
            raise StorageError("storage is not open")
        await asyncio.to_thread(self._write_sync, self._producer, list(records))

    async def close(self) -> None:
        """Flush and drop the producer."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(producer.flush, _TIMEOUT_S)

    # -- blocking parts, run in threads ---------------------------------------

    def _ensure_topic(self) -> None:
        admin = AdminClient(self._base)
        topic = NewTopic(
            self._topic,
            num_partitions=1,
            replication_factor=self._replication_factor,
            config={"cleanup.policy": "compact"},
        )
        future = admin.create_topics([topic], request_timeout=_TIMEOUT_S)[self._topic]
        try:
            future.result(timeout=_TIMEOUT_S)
            _log.info("created storage topic %s (compacted, 1 partition)", self._topic)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not (
                isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
            ):
                raise StorageError(f"cannot create storage topic {self._topic}: {exc}") from exc
            self._warn_if_not_compacted(admin)

    def _warn_if_not_compacted(self, admin: AdminClient) -> None:
        # An existing topic made by auto-creation would delete old schemas after
        # its retention; say so rather than silently losing ids later.
        resource = ConfigResource(ConfigResource.Type.TOPIC, self._topic)
        try:
            configs = admin.describe_configs([resource])[resource].result(timeout=_TIMEOUT_S)
        except KafkaException as exc:
            _log.warning("cannot describe storage topic %s: %s", self._topic, exc)
            return
        policy = configs.get("cleanup.policy")
        if policy is None or "compact" not in str(policy.value):
            _log.warning(
                "storage topic %s has cleanup.policy=%s, not compact: old records may expire",
                self._topic,
                None if policy is None else policy.value,
            )

    def _read_all(self) -> list[Record]:
        consumer = Consumer(
            {
                **self._base,
                "group.id": f"registry-bootstrap-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
            }
        )
        records: list[Record] = []
        try:
            low, high = watermarks(consumer, self._topic, 0, timeout_s=_TIMEOUT_S)
            if high <= low:
                return records
            consumer.assign([TopicPartition(self._topic, 0, low)])
            position = low
            # Compaction leaves holes in offsets, so stop on position, not count.
            while position < high:
                msg = consumer.poll(_TIMEOUT_S)
                if msg is None:
                    raise StorageError(
                        f"timed out reading {self._topic} at offset {position} of {high}"
                    )
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        break
                    raise StorageError(f"cannot read {self._topic}: {error}")
                position = int(msg.offset() or 0) + 1
                raw_key, raw_value = msg.key(), msg.value()
                if raw_key is None:
                    continue
                try:
                    key = json.loads(raw_key)
                    value = None if raw_value is None else json.loads(raw_value)
                except ValueError:
                    _log.warning("skipping unreadable record at offset %s", msg.offset())
                    continue
                records.append((key, value))
        except (KafkaException, StackError) as exc:
            raise StorageError(f"cannot read {self._topic}: {exc}") from exc
        finally:
            consumer.close()
        return records

    def _write_sync(self, producer: Producer, records: list[Record]) -> None:
        errors: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        try:
            for key, value in records:
                # Partition 0 always: the state is read from partition 0 only,
                # even if someone made the topic with more partitions.
                producer.produce(
                    self._topic,
                    partition=0,
                    key=_encode(key),
                    value=None if value is None else _encode(value),
                    on_delivery=on_delivery,
                )
        except (KafkaException, BufferError) as exc:
            raise StorageError(f"cannot write to {self._topic}: {exc}") from exc
        remaining = producer.flush(_TIMEOUT_S)
        if remaining:
            raise StorageError(f"{remaining} record(s) to {self._topic} not confirmed in time")
        if errors:
            raise StorageError(f"write to {self._topic} failed: {'; '.join(errors)}")
