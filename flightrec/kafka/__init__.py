"""Kafka I/O shared by the recorder, the worker, replay and the CLI: the one
confirmed producer (one poll thread, one backpressure policy) and topic
administration (docs/design.md, "Layers").

Everything here speaks bytes: encoding and the data contracts are
:mod:`flightrec.contracts`' job.
"""

from flightrec.kafka.producer import ConfirmedProducer, Header
from flightrec.kafka.retention import RetentionReport, apply_retention
from flightrec.kafka.topics import (
    APPLICATIONS_PARTITIONS,
    TopicSpec,
    aensure_topics,
    agent_topic_specs,
    check_partition_counts,
    ensure_topics,
    topic_specs,
    watermarks,
)

__all__ = [
    "APPLICATIONS_PARTITIONS",
    "ConfirmedProducer",
    "Header",
    "RetentionReport",
    "TopicSpec",
    "aensure_topics",
    "agent_topic_specs",
    "apply_retention",
    "check_partition_counts",
    "ensure_topics",
    "topic_specs",
    "watermarks",
]
