"""Topic specifications and idempotent topic creation.

Every topic flightrec uses is declared here once (partitions, replication,
configuration), derived from the frozen ``Settings``: names carry the settings'
prefix, the chain-of-thought topic gets ``settings.cot_partitions`` partitions
and a long (unlimited) retention, as does its checkpoint topic, and
``min.insync.replicas=2`` is only asked for where the replication factor can
honour it (RF >= 3, as in production).

``ensure_topics`` creates what is missing with confluent-kafka's ``AdminClient``,
ignores topics that already exist, and returns only once the broker's metadata
shows every requested topic with a leader for each partition, so a producer
started right after it never races the creation. ``aensure_topics`` runs the
same work off the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from flightrec.contracts.errors import ConfigError, StackError
from flightrec.contracts.retention import governed_topics, retention_profile, with_retention
from flightrec.contracts.settings import Settings

__all__ = [
    "APPLICATIONS_PARTITIONS",
    "TopicSpec",
    "aensure_topics",
    "agent_topic_specs",
    "check_partition_counts",
    "ensure_topics",
    "topic_specs",
    "watermarks",
]

_librdkafka_log = logging.getLogger("flightrec.kafka")

APPLICATIONS_PARTITIONS = 6
"""Partitions of the input and output topics: the unit of worker scaling."""

_DLQ_PARTITIONS = 1  # dead letters are rare; one partition keeps them in arrival order
_REPLAYS_PARTITIONS = 3
_CHECKPOINTS_PARTITIONS = 1  # a few records per worker a minute


@dataclass(frozen=True)
class TopicSpec:
    """One topic as flightrec wants it created."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)

    def new_topic(self) -> NewTopic:
        """The ``AdminClient`` request for this spec."""
        return NewTopic(
            self.name,
            num_partitions=self.partitions,
            replication_factor=self.replication_factor,
            config=dict(self.config),
        )


def topic_specs(settings: Settings) -> dict[str, TopicSpec]:
    """Every topic of ``settings`` keyed by its (prefixed) name."""
    topics = settings.topics
    rf = settings.replication_factor
    cot_config = {
        "cleanup.policy": "delete",
        # The flight record is kept until someone decides otherwise.
        "retention.ms": "-1",
        "retention.bytes": "-1",
    }
    if rf >= 3:
        # With RF 3 a write confirmed by acks=all survives the loss of one broker.
        cot_config["min.insync.replicas"] = "2"
    compacted = {"cleanup.policy": "compact"}
    # The ledger holds one entry per run; only recent ones matter (see
    # agents.attempts), so old entries are deleted as well as compacted.
    ledger_retention_ms = int(max(7 * 86400.0, 2 * settings.attempts_lookback_s) * 1000)
    ledger = {"cleanup.policy": "compact,delete", "retention.ms": str(ledger_retention_ms)}
    specs = [
        TopicSpec(topics.applications, APPLICATIONS_PARTITIONS, rf),
        TopicSpec(topics.applications_dlq, _DLQ_PARTITIONS, rf),
        TopicSpec(topics.decisions, APPLICATIONS_PARTITIONS, rf),
        TopicSpec(topics.cot, settings.cot_partitions, rf, cot_config),
        # Checkpoints of the CoT's chain heads vouch for the CoT: kept as long,
        # and on one partition, so an export reads them in the order written.
        TopicSpec(topics.checkpoints, _CHECKPOINTS_PARTITIONS, rf, cot_config),
        TopicSpec(topics.replays, _REPLAYS_PARTITIONS, rf),
        # The attempt ledger writes to the partition of its input event, so it
        # needs exactly as many partitions as the input topic.
        TopicSpec(topics.attempts, APPLICATIONS_PARTITIONS, rf, ledger),
        # Registry storage: one partition gives a total order of schema writes.
        TopicSpec(topics.schemas, 1, rf, compacted),
    ]
    return {spec.name: _governed(settings, spec) for spec in specs}


def _governed(settings: Settings, spec: TopicSpec) -> TopicSpec:
    """``spec`` with the retention profile's minimum when the profile governs it
    (contracts.retention): a flight-record topic is born compliant."""
    if spec.name not in governed_topics(settings.topics):
        return spec
    profile = retention_profile(settings.retention_profile)
    return TopicSpec(
        spec.name, spec.partitions, spec.replication_factor, with_retention(profile, spec.config)
    )


def _missing_or_leaderless(
    admin: AdminClient, specs: list[TopicSpec], timeout_s: float
) -> list[str]:
    metadata = admin.list_topics(timeout=timeout_s)
    pending: list[str] = []
    for spec in specs:
        topic = metadata.topics.get(spec.name)
        if topic is None or topic.error is not None or not topic.partitions:
            pending.append(spec.name)
            continue
        if any(p.leader < 0 for p in topic.partitions.values()):
            pending.append(spec.name)
    return pending


def agent_topic_specs(
    settings: Settings, input_topic: str, decisions: str, dlq: str
) -> list[TopicSpec]:
    """An agent's topics (names with their prefix): input and decisions with as
    many partitions as the attempt ledger, dead letters on one. The decisions
    topic keeps its records as long as the retention profile asks."""
    rf = settings.replication_factor
    profile = retention_profile(settings.retention_profile)
    return [
        TopicSpec(input_topic, APPLICATIONS_PARTITIONS, rf),
        TopicSpec(decisions, APPLICATIONS_PARTITIONS, rf, with_retention(profile, {})),
        TopicSpec(dlq, _DLQ_PARTITIONS, rf),
    ]


def ensure_topics(
    settings: Settings,
    names: Iterable[str] | None = None,
    *,
    extra: Iterable[TopicSpec] = (),
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics named ``names`` (default: all of ``settings``) and the
    ``extra`` ones (an agent's, :func:`agent_topic_specs`) if missing.

    Blocking; call ``aensure_topics`` from async code. Returns the names this
    call created. Existing topics are left as they are. Raises ``ConfigError``
    for a name that is not one of the settings' topics and ``StackError`` when
    the broker refuses or does not confirm within ``timeout_s``.
    """
    all_specs = topic_specs(settings)
    wanted = list(all_specs) if names is None else list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in all_specs]
    if unknown:
        raise ConfigError("unknown topic names", names=unknown, known=sorted(all_specs))
    specs = [all_specs[name] for name in wanted]
    specs += [spec for spec in extra if spec.name not in {s.name for s in specs}]
    if not specs:
        return []
    # librdkafka's own log lines (connection refused, ...) go through logging,
    # not straight to stderr.
    admin = AdminClient(settings.kafka_client_config(), logger=_librdkafka_log)
    created: list[str] = []
    try:
        futures = admin.create_topics(
            [spec.new_topic() for spec in specs],
            operation_timeout=timeout_s,
            request_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
                created.append(name)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                code = error.code() if isinstance(error, KafkaError) else None
                if code == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                if code in _NO_ANSWER:
                    # librdkafka's own request timeout can fire before our
                    # wait does: the same "nobody answered", not a refusal.
                    raise _did_not_answer(settings, timeout_s) from exc
                raise StackError(
                    "could not create topic", topic=name, error=str(exc), retryable=True
                ) from exc
    except KafkaException as exc:
        raise StackError(
            "Kafka did not accept the topic request",
            bootstrap_servers=settings.bootstrap_servers,
            error=str(exc),
            retryable=True,
        ) from exc
    except concurrent.futures.TimeoutError as exc:
        raise _did_not_answer(settings, timeout_s) from exc
    # CreateTopics returns once the controller has the topic; the broker serving
    # our metadata may learn of the leaders a moment later.
    deadline = time.monotonic() + timeout_s
    pending = _missing_or_leaderless(admin, specs, timeout_s)
    while pending:
        if time.monotonic() > deadline:
            raise StackError("topics have no leader yet", topics=pending, retryable=True)
        time.sleep(0.1)
        pending = _missing_or_leaderless(admin, specs, timeout_s)
    return created


def check_partition_counts(
    settings: Settings, topics: Iterable[str], *, timeout_s: float = 30.0
) -> dict[str, int]:
    """The partition count of each of ``topics``; ``ConfigError`` naming every
    topic and its count when they differ, or when one does not exist.

    The worker's input topics and the attempt ledger must agree: the ledger
    writes a run's entry to its input's partition and reads back the partitions
    a worker owns (agents.attempts). A mismatch found at start-up is one clear
    error; found per record it would be a stream of dead letters."""
    wanted = list(dict.fromkeys(topics))
    admin = AdminClient(settings.kafka_client_config(), logger=_librdkafka_log)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise _did_not_answer(settings, timeout_s) from exc
    counts: dict[str, int] = {}
    missing: list[str] = []
    for name in wanted:
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:
            missing.append(name)
        else:
            counts[name] = len(topic.partitions)
    if missing:
        raise ConfigError("topics the worker needs do not exist", topics=missing)
    if len(set(counts.values())) > 1:
        described = ", ".join(f"{name}: {n}" for name, n in counts.items())
        raise ConfigError(
            f"these topics must have the same number of partitions ({described}): the "
            "attempt ledger writes each run to its input's partition",
            partitions=counts,
        )
    return counts


# Error codes that mean no broker answered in time (as opposed to a refusal).
_NO_ANSWER = frozenset(
    {
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.REQUEST_TIMED_OUT,
    }
)


def _did_not_answer(settings: Settings, timeout_s: float) -> StackError:
    return StackError(
        f"Kafka did not answer within {timeout_s:.0f} s; is it running "
        "(`flightrec stack status`) and are the bootstrap servers right?",
        bootstrap_servers=settings.bootstrap_servers,
        retryable=True,
    )


async def aensure_topics(
    settings: Settings,
    names: Iterable[str] | None = None,
    *,
    extra: Iterable[TopicSpec] = (),
    timeout_s: float = 30.0,
) -> list[str]:
    """``ensure_topics`` in a worker thread, so the event loop keeps running."""
    wanted = None if names is None else list(names)
    return await asyncio.to_thread(
        ensure_topics, settings, wanted, extra=list(extra), timeout_s=timeout_s
    )


def watermarks(
    consumer: Consumer, topic: str, partition: int, *, timeout_s: float = 30.0
) -> tuple[int, int]:
    """``(low, high)`` offsets of one partition, retrying while leadership settles.

    Right after a topic is created (or a broker restarts) the client's metadata
    may not know the partition yet, or name a leader that still answers
    ``NOT_LEADER_FOR_PARTITION``; those and other retriable errors are retried
    until ``timeout_s``. Blocking.
    """
    tp = TopicPartition(topic, partition)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(
                tp, timeout=max(1.0, min(10.0, deadline - time.monotonic())), cached=False
            )
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = isinstance(error, KafkaError) and (
                error.retriable()
                or error.code()
                in (
                    KafkaError.NOT_LEADER_FOR_PARTITION,
                    KafkaError.LEADER_NOT_AVAILABLE,
                    KafkaError.UNKNOWN_TOPIC_OR_PART,
                    KafkaError._UNKNOWN_PARTITION,
                    KafkaError._UNKNOWN_TOPIC,
                    KafkaError._TIMED_OUT,
                )
            )
            if not retriable or time.monotonic() > deadline:
                raise StackError(
                    "could not read partition offsets",
                    topic=topic,
                    partition=partition,
                    error=str(exc),
                    retryable=True,
                ) from exc
            time.sleep(0.2)
