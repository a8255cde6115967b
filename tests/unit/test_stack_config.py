"""Local stack configuration and topic specs, without starting anything."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flightrec.contracts.errors import ConfigError, StackError
from flightrec.contracts.settings import Settings, Topics
from flightrec.kafka.topics import ensure_topics, topic_specs
from flightrec.stack import Stack
from flightrec.stack_kafka import (
    SLF4J_VERSION,
    KafkaLayout,
    fetch_kafka,
    render_pom,
    render_server_properties,
)
from flightrec.stack_proc import is_alive, read_pid, stop_process, tail

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(stack_dir=tmp_path / "stack", **overrides)  # type: ignore[arg-type]


def test_pom_depends_on_the_broker_and_pins_slf4j_2() -> None:
    root = ET.fromstring(render_pom("4.1.1"))
    deps = {
        (
            d.findtext("m:groupId", namespaces=POM_NS),
            d.findtext("m:artifactId", namespaces=POM_NS),
        ): d.findtext("m:version", namespaces=POM_NS)
        for d in root.findall("m:dependencies/m:dependency", POM_NS)
    }
    assert deps[("org.apache.kafka", "kafka_2.13")] == "4.1.1"
    assert ("org.apache.logging.log4j", "log4j-core") in deps
    assert ("org.apache.logging.log4j", "log4j-slf4j2-impl") in deps
    assert deps[("org.slf4j", "slf4j-api")] == SLF4J_VERSION
    assert SLF4J_VERSION.startswith("2.0.")
    assert not any(artifact == "kafka-tools" for _, artifact in deps)


def test_server_properties_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_port=41111, kafka_controller_port=41112)
    layout = KafkaLayout(settings)
    props = dict(
        line.split("=", 1)
        for line in render_server_properties(settings, layout).splitlines()
        if line and not line.startswith("#")
    )
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:41112"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:41111,CONTROLLER://127.0.0.1:41112"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:41111"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert Path(props["log.dirs"]).is_relative_to(layout.data_dir)
    assert layout.data_dir == (tmp_path / "stack" / "kafka-data").resolve()


def test_missing_java_or_maven_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(StackError) as info:
        fetch_kafka(_settings(tmp_path))
    message = str(info.value)
    assert "`java` is not installed" in message
    assert "docker compose up" in message


def test_second_fetch_is_a_no_op_once_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    layout = KafkaLayout(settings)
    layout.libs.mkdir(parents=True)
    layout.marker.write_text("46 jars\n")
    # No java, no mvn: a completed fetch must not need them.
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert fetch_kafka(settings) == layout.libs


def test_cot_topic_spec_follows_settings() -> None:
    local = Settings(cot_partitions=12, topics=Topics().with_prefix("p."))
    specs = topic_specs(local)
    cot = specs["p.agent.cot"]
    assert cot.partitions == 12 and cot.replication_factor == 1
    assert cot.config["cleanup.policy"] == "delete"
    assert cot.config["retention.ms"] == "-1"
    assert "min.insync.replicas" not in cot.config
    production = topic_specs(Settings(replication_factor=3))
    assert production["agent.cot"].config["min.insync.replicas"] == "2"
    assert all(spec.replication_factor == 3 for spec in production.values())
    assert specs["p.loan.applications"].partitions == 6
    assert specs["p.loan.decisions"].partitions == 6
    assert 1 <= specs["p.loan.applications.dlq"].partitions <= 3
    assert specs["p.agent.replays"].partitions == 3
    # Checkpoints vouch for the CoT: kept as long, never compacted away.
    checkpoints = specs["p.agent.cot.checkpoints"]
    assert checkpoints.partitions == 1
    assert checkpoints.config == cot.config
    assert production["agent.cot.checkpoints"].config["min.insync.replicas"] == "2"
    assert set(specs) == {name for field, name in local.topics if field != "prefix"}


def test_unknown_topic_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        ensure_topics(Settings(), ["no.such.topic"])


def test_status_of_a_stack_that_never_ran(tmp_path: Path) -> None:
    stack = Stack(_settings(tmp_path, kafka_port=1, registry_port=2, bureau_port=3))
    statuses = {s.name: s for s in stack.status()}
    assert set(statuses) == {"kafka", "registry", "bureau"}
    assert not any(s.up or s.pid is not None for s in statuses.values())
    assert [s.pid for s in stack.down()] == [None, None, None]


def test_pid_helpers_ignore_foreign_and_stale_pids(tmp_path: Path) -> None:
    pid_path = tmp_path / "x.pid"
    assert read_pid(pid_path) is None
    pid_path.write_text("not a pid")
    assert read_pid(pid_path) is None
    # Our own pid is alive, but it is not the process the marker names: it must
    # neither count as running nor be signalled.
    pid_path.write_text(str(os.getpid()))
    assert not is_alive(os.getpid(), "marker-that-is-not-in-our-cmdline")
    assert stop_process(pid_path, "marker-that-is-not-in-our-cmdline", grace_s=0.1) is None
    assert not pid_path.exists()
    assert tail(tmp_path / "missing.log") == ""
