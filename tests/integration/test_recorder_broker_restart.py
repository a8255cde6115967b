"""The broker dies (SIGKILL) and comes back in the middle of many runs: every event
is confirmed, none is lost or duplicated, every trace stays ordered and chained,
and no delivery error is raised or logged.

The test starts its own single-node KRaft broker (the stack's jars, a temporary
data directory kept across the restart) so killing it disturbs nobody else.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightrec.contracts.codec import Codec
from flightrec.contracts.events import CotEvent, CotEventBase
from flightrec.contracts.settings import Settings
from flightrec.kafka.topics import ensure_topics
from flightrec.recorder.kafka_recorder import KafkaRecorder
from flightrec.stack_kafka import KafkaLayout, ensure_formatted, fetch_kafka, java_command
from flightrec.stack_proc import port_open, tail
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

from recorder_support import check_traces, read_topic, record_runs

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayBroker:
    """A KRaft broker of our own; its data survives :meth:`kill` + :meth:`start`."""

    def __init__(self, stack: Settings, directory: Path) -> None:
        jars = fetch_kafka(stack)  # already there when the stack runs: no download
        port = _free_port()
        self.settings = Settings(
            stack_dir=directory,
            kafka_version=stack.kafka_version,
            kafka_port=port,
            kafka_controller_port=_free_port(),
            bootstrap_servers=f"127.0.0.1:{port}",
        )
        self.layout = KafkaLayout(self.settings)
        self.layout.home.mkdir(parents=True, exist_ok=True)
        self.layout.libs.symlink_to(jars, target_is_directory=True)
        ensure_formatted(self.settings, self.layout)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        argv = java_command(
            self.layout, "kafka.Kafka", str(self.layout.server_properties), heap="384m"
        )
        with self.layout.stdout_file.open("ab") as out:
            self._proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        for _ in range(int(timeout_s * 10)):
            if port_open(self.settings.kafka_port, timeout_s=0.1):
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"broker did not start:\n{tail(self.layout.stdout_file)}")

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=30)
        self._proc = None


@pytest.fixture
def broker(stack: Settings, tmp_path: Path) -> Iterator[ThrowawayBroker]:
    own = ThrowawayBroker(stack, tmp_path / "broker")
    own.start()
    try:
        yield own
    finally:
        own.kill()


async def test_broker_restart_mid_run_loses_nothing(
    settings: Settings,
    codec: Codec,
    broker: ThrowawayBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The registry stays on the stack; the CoT records go to our own broker.
    target = settings.model_copy(
        update={"bootstrap_servers": broker.settings.bootstrap_servers, "cot_partitions": 3}
    )
    await asyncio.to_thread(ensure_topics, target, [target.topics.cot])
    salt = uuid.uuid4().hex
    confirmed_before_kill = asyncio.Event()
    restarted = asyncio.Event()
    down = asyncio.Event()
    runs: list[list[CotEvent]] = []

    class CountingEncoder:
        """The real codec, counting the events emitted while the broker is down."""

        while_down = 0

        async def encode_cot(self, event: CotEventBase) -> bytes:
            if down.is_set() and not restarted.is_set():
                self.while_down += 1
            return await codec.encode_cot(event)

    async def waves(recorder: KafkaRecorder) -> None:
        wave = 0
        waves_after_restart = 0
        while waves_after_restart < 2:
            batch = [synthetic_run(synthetic_trace_id(wave * 20 + i, salt)) for i in range(20)]
            runs.extend(batch)
            await record_runs(recorder, batch, pause_s=0.05)
            confirmed_before_kill.set()
            wave += 1
            if restarted.is_set():
                waves_after_restart += 1

    encoder = CountingEncoder()
    with caplog.at_level(logging.WARNING, logger="flightrec"):
        async with KafkaRecorder(target, encoder) as recorder:
            producing = asyncio.create_task(waves(recorder))
            await confirmed_before_kill.wait()
            await asyncio.to_thread(broker.kill)
            down.set()
            await asyncio.sleep(1.0)  # let emits pile up against a dead broker
            await asyncio.to_thread(broker.start)
            restarted.set()
            await producing  # raises if any event was not confirmed
            assert recorder.pending() == 0

    assert encoder.while_down > 20  # the outage did hit runs in flight
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]

    records = await asyncio.to_thread(read_topic, target, target.topics.cot)
    decoded = [(r, await codec.decode_cot(r.value)) for r in records]
    assert len(decoded) == sum(len(r) for r in runs)  # nothing lost, nothing twice
    check_traces(decoded, {r[0].trace_id: len(r) for r in runs})  # type: ignore[arg-type]
