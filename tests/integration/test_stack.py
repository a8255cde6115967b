"""The local stack keeps its data across down/up, and up is idempotent.

Runs its own stack (own directory, own free ports), not the session stack, so
stopping it disturbs no other test.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from flightrec.contracts.settings import Settings
from flightrec.kafka.topics import ensure_topics, topic_specs
from flightrec.stack import Stack
from flightrec.stack_proc import is_alive, read_pid

pytestmark = pytest.mark.integration

MESSAGES = 1000


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[Stack]:
    kafka, controller, registry, bureau = _free_ports(4)
    settings = Settings.from_env(
        {
            "FLIGHTREC_STACK_DIR": str(tmp_path / "stack"),
            "FLIGHTREC_KAFKA_PORT": str(kafka),
            "FLIGHTREC_KAFKA_CONTROLLER_PORT": str(controller),
            "FLIGHTREC_REGISTRY_PORT": str(registry),
            "FLIGHTREC_BUREAU_PORT": str(bureau),
        }
    )
    stack = Stack(settings)
    try:
        yield stack
    finally:
        stack.down()


def _produce(settings: Settings, topic: str) -> None:
    producer = Producer(settings.producer_config(**{"linger.ms": 5}))
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _msg: object) -> None:
        if error is not None:
            failures.append(error)

    for i in range(MESSAGES):
        producer.produce(topic, key=f"k{i % 17}", value=f"message-{i}", on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert failures == []


def _read_all(settings: Settings, topic: str, partitions: int) -> list[str]:
    consumer = Consumer(settings.consumer_config(group_id="stack-test"))
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values: list[str] = []
        # Bounded by an empty-poll budget, not a clock: stop after the broker
        # had nothing more to give for a while.
        idle = 0
        while len(values) < MESSAGES and idle < 30:
            batch = consumer.consume(500, timeout=1.0)
            if not batch:
                idle += 1
                continue
            for msg in batch:
                assert msg.error() is None, msg.error()
                raw = msg.value()
                assert raw is not None
                values.append(raw.decode())
        return values
    finally:
        consumer.close()


def test_messages_survive_down_and_up_and_second_up_changes_nothing(own_stack: Stack) -> None:
    settings = own_stack.settings
    own_stack.up()
    first = {s.name: s for s in own_stack.status()}
    assert first["kafka"].up and first["kafka"].pid is not None

    # A second up while running starts nothing: every pid stays the same.
    again = {s.name: s.pid for s in Stack(settings).up()}
    assert again == {name: s.pid for name, s in first.items()}

    topic = settings.topics.cot
    assert ensure_topics(settings, [topic]) == [topic]
    _produce(settings, topic)

    kafka_pid = first["kafka"].pid
    stopped = {s.name: s.pid for s in own_stack.down()}
    assert stopped["kafka"] == kafka_pid
    assert not is_alive(kafka_pid, str(own_stack.layout.server_properties))
    assert read_pid(own_stack.run_dir / "kafka.pid") is None
    assert not {s.name: s.up for s in own_stack.status()}["kafka"]

    restarted = {s.name: s for s in own_stack.up()}
    assert restarted["kafka"].up and restarted["kafka"].pid != kafka_pid
    # The topic survived the restart; asking again creates nothing.
    assert ensure_topics(settings, [topic]) == []

    partitions = topic_specs(settings)[topic].partitions
    values = _read_all(settings, topic, partitions)
    assert sorted(values) == sorted(f"message-{i}" for i in range(MESSAGES))
