"""Dead-letter operations: read a DLQ, open a record, re-drive records once.

A worker's dead letter (``agents.pipeline``) keeps the input's bytes encrypted
(``recorder.dlq_cipher``) with headers naming the source position, the failure
and the key id. Re-driving one writes its decrypted bytes back to an input
topic with provenance headers, and records the re-drive in the compacted
``<dlq>.redrives`` topic keyed by the DLQ position, in one Kafka transaction:
both land or neither does, so a record is re-driven exactly once however often
the command runs (a re-drive already recorded is skipped). Records the codec's
``DLQ`` rule tees off hold pseudonymised JSON, not the input, and cannot be
re-driven.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from flightrec.contracts import headers as h
from flightrec.contracts.errors import ConfigError, StackError
from flightrec.contracts.settings import Settings
from flightrec.kafka.topics import TopicSpec, ensure_topics, watermarks
from flightrec.recorder.dlq_cipher import DlqCipher

__all__ = [
    "DeadLetter",
    "read_dead_letters",
    "read_redriven",
    "redrive",
    "redrive_headers",
    "redrives_topic",
    "select_for_redrive",
]

# At least the producer's delivery timeout (PRODUCER_SAFE_DEFAULTS), and well
# under the broker's transaction.max.timeout.ms (15 minutes by default).
_TRANSACTION_TIMEOUT_MS = 180_000

_TIMEOUT_S = 30.0


def redrives_topic(dlq_topic: str) -> str:
    """The compacted topic recording which records of ``dlq_topic`` were re-driven."""
    return f"{dlq_topic}.redrives"


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ record: its position, key, (encrypted) value and headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """``topic:partition:offset``: what the CLI and the re-drive log name it by."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str:
        """Header ``name`` as text; empty when absent."""
        return self.headers.get(name, b"").decode("utf-8", "replace")

    @property
    def reason(self) -> str:
        """The failure: error class and (scrubbed) message."""
        text = self.header(h.DLQ_ERROR_MESSAGE) or self.header(h.RULE_EXCEPTION)
        kind = self.header(h.DLQ_ERROR_CLASS) or self.header(h.RULE_ERROR_CLASS)
        return f"{kind}: {text}"

    @property
    def rule(self) -> str:
        """The contract rule that failed, if one did."""
        return self.header(h.DLQ_ERROR_RULE) or self.header(h.RULE_NAME)

    @property
    def source(self) -> str:
        """Where the input was read (``topic:partition@offset``); the topic alone
        for a rule's dead letter, which knows no position."""
        topic = self.header(h.DLQ_SOURCE_TOPIC) or self.header(h.RULE_TOPIC)
        if not self.header(h.DLQ_SOURCE_PARTITION):
            return topic
        return f"{topic}:{self.header(h.DLQ_SOURCE_PARTITION)}@{self.header(h.DLQ_SOURCE_OFFSET)}"

    @property
    def time(self) -> str:
        """When it was dead-lettered (ISO 8601)."""
        return self.header(h.DLQ_ERROR_TIME) or self.header(h.RULE_ERROR_TIME)

    @property
    def redrivable(self) -> bool:
        """Whether it holds the input's bytes (encrypted): a worker's dead letter."""
        return bool(self.header(h.DLQ_ENCRYPTION)) and self.value is not None

    def reveal(self, cipher: DlqCipher) -> bytes:
        """The original input bytes, decrypted with the key its header names."""
        if not self.redrivable or self.value is None:
            raise ConfigError("this dead letter holds no encrypted input", dlq_record=self.id)
        return cipher.decrypt(self.value, header=self.headers[h.DLQ_ENCRYPTION])


def _as_bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _headers(raw: Any) -> dict[str, bytes]:
    """A message's headers (a list of pairs, or a mapping) as ``name -> bytes``."""
    pairs = raw.items() if isinstance(raw, dict) else (raw or [])
    return {name: _as_bytes(value) or b"" for name, value in pairs}


def _read(
    settings: Settings, topic: str
) -> list[tuple[int, int, bytes | None, bytes | None, dict[str, bytes]]]:
    """Every committed record of ``topic`` up to its current end (blocking)."""
    consumer = Consumer(
        settings.consumer_config(
            group_id=f"{settings.app_id}-dlq-reader", **{"isolation.level": "read_committed"}
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=_TIMEOUT_S)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            return []
        ends = {p: watermarks(consumer, topic, p)[1] for p in sorted(described.partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p, high in ends.items() if high > 0])
        rows: list[tuple[int, int, bytes | None, bytes | None, dict[str, bytes]]] = []
        deadline = time.monotonic() + _TIMEOUT_S
        remaining = {p for p, high in ends.items() if high > 0}
        while remaining:
            if time.monotonic() > deadline:
                raise StackError("timed out reading the topic", topic=topic, retryable=True)
            msg = consumer.poll(0.5)
            if msg is not None:
                if msg.error() is not None:
                    raise StackError(
                        "could not read the topic", topic=topic, error=str(msg.error())
                    )
                rows.append(
                    (
                        msg.partition() or 0,
                        msg.offset() or 0,
                        _as_bytes(msg.key()),
                        _as_bytes(msg.value()),
                        _headers(msg.headers()),
                    )
                )
            # Transaction markers take offsets no record holds: the position, not
            # the last record's offset, says when a partition is read to its end.
            positions = consumer.position([TopicPartition(topic, p) for p in remaining])
            remaining -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
        return rows
    except KafkaException as exc:
        raise StackError("could not read the topic", topic=topic, error=str(exc)) from exc
    finally:
        consumer.close()


def read_dead_letters(settings: Settings, topic: str) -> list[DeadLetter]:
    """The records of the DLQ ``topic``, in partition and offset order."""
    rows = _read(settings, topic)
    letters = [DeadLetter(topic, *row) for row in rows]
    return sorted(letters, key=lambda d: (d.partition, d.offset))


def read_redriven(settings: Settings, dlq_topic: str) -> set[str]:
    """The ids of the records of ``dlq_topic`` already re-driven."""
    return {
        key.decode() for _p, _o, key, _v, _h in _read(settings, redrives_topic(dlq_topic)) if key
    }


def select_for_redrive(
    letters: Sequence[DeadLetter], done: set[str], ids: Iterable[str] | None
) -> tuple[list[DeadLetter], list[str]]:
    """``(to re-drive, skipped with why)``: the records named by ``ids`` (all,
    when ``None``) that hold an input and were not re-driven before.

    An id that names no record is a :class:`ConfigError`."""
    by_id = {letter.id: letter for letter in letters}
    wanted = list(by_id) if ids is None else list(dict.fromkeys(ids))
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise ConfigError(
            "no such dead letter", ids=unknown, topic=letters[0].topic if letters else ""
        )
    chosen: list[DeadLetter] = []
    skipped: list[str] = []
    for i in wanted:
        letter = by_id[i]
        if i in done:
            skipped.append(f"{i}: already re-driven")
        elif not letter.redrivable:
            skipped.append(f"{i}: a rule's dead letter holds no input to re-drive")
        else:
            chosen.append(letter)
    return chosen, skipped


def redrive_headers(letter: DeadLetter) -> list[tuple[str, str | bytes | None]]:
    """Provenance of a re-driven input: the DLQ position, the original source
    position, trace and failure."""
    headers: list[tuple[str, str | bytes | None]] = [(h.DLQ_REDRIVEN_FROM, letter.id.encode())]
    for name in (h.DLQ_SOURCE_TOPIC, h.DLQ_SOURCE_PARTITION, h.DLQ_SOURCE_OFFSET, h.DLQ_TRACE_ID):
        if name in letter.headers:
            headers.append((name, letter.headers[name]))
    headers.append((h.DLQ_ERROR_CLASS, letter.headers.get(h.DLQ_ERROR_CLASS, b"")))
    return headers


def redrive(
    settings: Settings,
    letters: Sequence[DeadLetter],
    cipher: DlqCipher,
    *,
    to_topic: str | None = None,
) -> tuple[list[str], list[str]]:
    """Re-drive ``letters`` (see the module docstring), each to ``to_topic`` or
    its source topic: ``(ids re-driven, ids skipped as already re-driven)``.
    Blocking.

    Each input and its re-drive record are written in one transaction under a
    transactional id per DLQ topic. The re-drive log is read after the
    producer has taken that id (which aborts whatever an earlier, interrupted
    re-drive left open), so a record it names is never written twice."""
    if not letters:
        return [], []
    dlq = letters[0].topic
    log_topic = redrives_topic(dlq)
    spec = TopicSpec(log_topic, 1, settings.replication_factor, {"cleanup.policy": "compact"})
    ensure_topics(settings, [], extra=[spec])
    # Decrypt everything first: a key missing from the ring stops the re-drive
    # before anything is written.
    plain = [(letter, letter.reveal(cipher)) for letter in letters]
    for letter, _value in plain:
        if not (to_topic or letter.header(h.DLQ_SOURCE_TOPIC)):
            raise ConfigError("dead letter names no source topic: give --to", dlq_record=letter.id)
    producer = Producer(
        settings.producer_config(
            **{
                "transactional.id": f"{settings.app_id}-redrive-{dlq}",
                # librdkafka refuses a transactional producer whose delivery
                # timeout (ours: 120 s) passes the transaction timeout (60 s).
                "transaction.timeout.ms": _TRANSACTION_TIMEOUT_MS,
            }
        )
    )
    done: list[str] = []
    skipped: list[str] = []
    try:
        producer.init_transactions(_TIMEOUT_S)
        already = read_redriven(settings, dlq)
        for letter, value in plain:
            if letter.id in already:
                skipped.append(letter.id)
                continue
            target = to_topic or letter.header(h.DLQ_SOURCE_TOPIC)
            producer.begin_transaction()
            producer.produce(target, value, key=letter.key, headers=redrive_headers(letter))
            producer.produce(log_topic, target.encode(), key=letter.id.encode())
            producer.commit_transaction(_TIMEOUT_S)
            done.append(letter.id)
    except KafkaException as exc:
        raise StackError(
            "re-drive failed", dlq=dlq, redriven=done, error=str(exc), retryable=True
        ) from exc
    finally:
        producer.flush(_TIMEOUT_S)
    return done, skipped
