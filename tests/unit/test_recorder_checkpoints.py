"""The recorder's checkpoints: per CoT partition, the last event the broker
confirmed, signed and written to the checkpoint topic every
``checkpoint_interval_s`` and on close, only when a head moved.

First the :class:`Checkpointer` on its own, then the ``KafkaRecorder`` with a
producer that stands in for the broker: it confirms each record at once, at the
next offset of the partition its key picks, so the test knows which event sits
where. The real broker: tests/integration/test_checkpoints.py."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError

from flightrec.contracts.chain import event_hash
from flightrec.contracts.checkpoint import CheckpointHead, parse_checkpoint, signature_problem
from flightrec.contracts.errors import RecorderError
from flightrec.contracts.events import CotEvent, CotEventBase, read_cot_event
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing import Keyring, RecordSigner
from flightrec.recorder import kafka_recorder
from flightrec.recorder.checkpoints import Checkpointer
from flightrec.recorder.kafka_recorder import KafkaRecorder
from flightrec.testing import MemoryProducer
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

PARTITIONS = 3


# ------------------------------------------------------------- Checkpointer


def test_each_partition_keeps_its_last_confirmed_event(signer: RecordSigner) -> None:
    checkpointer = Checkpointer(Settings(app_id="app"), signer)
    assert not checkpointer.changed and checkpointer.take() is None
    checkpointer.confirmed(2, 10, "t1", 1, 0, "h10")
    checkpointer.confirmed(0, 5, "t2", 1, 0, "h5")
    checkpointer.confirmed(2, 11, "t1", 1, 1, "h11")
    checkpointer.confirmed(2, 9, "t3", 1, 0, "h9")  # late and older: ignored
    assert checkpointer.heads() == {
        0: CheckpointHead(offset=5, trace_id="t2", attempt=1, seq=0, head="h5"),
        2: CheckpointHead(offset=11, trace_id="t1", attempt=1, seq=1, head="h11"),
    }
    checkpoint = checkpointer.take()
    assert checkpoint is not None
    assert (checkpoint.writer, checkpoint.key_id) == ("app", signer.key_id)
    assert checkpoint.heads == checkpointer.heads()
    record, _ = parse_checkpoint(checkpoint.encode())
    assert signature_problem(record, Keyring([signer.public_key])) is None
    # Nothing moved since: no new checkpoint, even for an older report.
    checkpointer.confirmed(0, 4, "t2", 1, 0, "h4")
    assert checkpointer.take() is None
    checkpointer.confirmed(0, 6, "t4", 2, 3, "h6")
    later = checkpointer.take()
    assert later is not None and later.heads[0].offset == 6 and later.heads[2].offset == 11


def test_the_writer_is_the_worker_instance_when_it_has_one(signer: RecordSigner) -> None:
    settings = Settings(app_id="app", worker_instance_id="worker-7")
    assert Checkpointer(settings, signer).writer == "worker-7"
    assert Checkpointer(Settings(app_id="app"), signer).writer == "app"


async def test_a_checkpoint_not_confirmed_goes_into_the_next_one(signer: RecordSigner) -> None:
    settings = Settings(app_id="app")
    checkpointer = Checkpointer(settings, signer)
    producer = MemoryProducer()
    producer.unconfirmed.add(settings.topics.checkpoints)
    checkpointer.confirmed(1, 3, "t1", 1, 0, "h3")
    with pytest.raises(RecorderError):
        await checkpointer.write(producer)
    assert checkpointer.changed
    producer.unconfirmed.clear()
    written = await checkpointer.write(producer)
    assert written is not None and written.heads[1].offset == 3
    (message,) = producer.on(settings.topics.checkpoints)
    assert (message.key, message.value) == ("app", written.encode())
    assert await checkpointer.write(producer) is None  # nothing moved


# ------------------------------------------------- KafkaRecorder, fake broker


class Delivered:
    """The delivery report's message: where the record landed."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]


class FakeBroker:
    """Stands in for ``ConfirmedProducer``: a record is confirmed on the loop
    right after it is produced (or failed, for a trace in ``failing``), at the
    next offset of partition ``crc32(key) % PARTITIONS``."""

    def __init__(self) -> None:
        self.log: dict[tuple[str, int], list[bytes]] = {}
        self.failing: set[str] = set()
        # Each record sent with send_and_wait (the checkpoints), as it is confirmed.
        self.confirmed: asyncio.Queue[bytes] = asyncio.Queue()

    def __call__(self, *_args: Any, **_kwargs: Any) -> FakeBroker:
        return self  # the recorder builds its producer: it gets this one

    async def start(self) -> None:
        pass

    def _append(self, topic: str, key: str, value: bytes) -> Delivered:
        partition = zlib.crc32(key.encode()) % PARTITIONS
        records = self.log.setdefault((topic, partition), [])
        records.append(value)
        return Delivered(topic, partition, len(records) - 1)

    async def produce(
        self,
        topic: str,
        value: bytes,
        *,
        key: str,
        on_delivery: Callable[[Any, KafkaError | None, Any], object],
        context: Any,
        **_options: Any,
    ) -> None:
        if key in self.failing:
            error = KafkaError(KafkaError._MSG_TIMED_OUT)
            asyncio.get_running_loop().call_soon(on_delivery, context, error, None)
            return
        message = self._append(topic, key, value)
        asyncio.get_running_loop().call_soon(on_delivery, context, None, message)

    async def send_and_wait(self, topic: str, value: bytes, **options: Any) -> Delivered:
        self.confirmed.put_nowait(value)
        return self._append(topic, str(options["key"]), value)

    async def flush(self, timeout_s: float = 30.0) -> int:
        await asyncio.sleep(0)  # the reports scheduled so far run first
        return 0

    async def close(self, timeout_s: float = 30.0) -> None:
        pass

    def events(self, topic: str) -> dict[int, list[CotEvent]]:
        return {
            partition: [read_cot_event(value) for value in values]
            for (name, partition), values in self.log.items()
            if name == topic
        }

    def checkpoints(self, topic: str) -> list[dict[str, Any]]:
        """The checkpoint records of ``topic`` (one writer: one partition, in order)."""
        return [
            parse_checkpoint(value)[0]
            for (name, _), values in self.log.items()
            if name == topic
            for value in values
        ]


class JsonEncoder:
    async def encode_cot(self, event: CotEventBase) -> bytes:
        return event.model_dump_json().encode()


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBroker]:
    fake = FakeBroker()
    monkeypatch.setattr(kafka_recorder, "ConfirmedProducer", fake)
    yield fake


def runs(count: int, salt: str) -> list[list[CotEvent]]:
    return [synthetic_run(synthetic_trace_id(i, salt)) for i in range(count)]


async def record(recorder: KafkaRecorder, events: list[CotEvent]) -> None:
    for event in events:
        await recorder.emit(event)
    await recorder.confirm(events[0].trace_id, events[0].attempt)


def expected_heads(broker: FakeBroker, topic: str) -> dict[str, dict[str, Any]]:
    """Per partition, the last event the fake broker holds, as a checkpoint names it."""
    return {
        str(partition): {
            "offset": len(events) - 1,
            "trace_id": events[-1].trace_id,
            "attempt": events[-1].attempt,
            "seq": events[-1].seq,
            "head": event_hash(events[-1]),
        }
        for partition, events in broker.events(topic).items()
    }


async def test_close_checkpoints_the_last_confirmed_event_of_each_partition(
    broker: FakeBroker, signer: RecordSigner
) -> None:
    settings = Settings(app_id="app", checkpoint_interval_s=3600)
    recorder = KafkaRecorder(settings, JsonEncoder(), signer=signer)
    async with recorder:
        for events in runs(8, "close"):
            await record(recorder, events)
    (checkpoint,) = broker.checkpoints(settings.topics.checkpoints)
    heads = expected_heads(broker, settings.topics.cot)
    assert len(heads) > 1  # the runs spread over the partitions
    assert checkpoint["heads"] == heads
    assert checkpoint["writer"] == "app"
    assert signature_problem(checkpoint, Keyring([signer.public_key])) is None


async def test_a_checkpoint_is_written_every_interval_only_when_a_head_moved(
    broker: FakeBroker, signer: RecordSigner
) -> None:
    settings = Settings(checkpoint_interval_s=0.02)
    topic = settings.topics.checkpoints
    first, second = runs(2, "interval")
    async with KafkaRecorder(settings, JsonEncoder(), signer=signer) as recorder:
        await record(recorder, first)
        await asyncio.wait_for(broker.confirmed.get(), 5)
        await asyncio.sleep(0.1)  # five intervals, nothing moved: nothing written
        assert len(broker.checkpoints(topic)) == 1
        await record(recorder, second)
        await asyncio.wait_for(broker.confirmed.get(), 5)
        assert broker.checkpoints(topic)[-1]["heads"] == expected_heads(broker, settings.topics.cot)
    # Closing adds nothing: the last checkpoint already holds every head.
    assert len(broker.checkpoints(topic)) == 2


async def test_an_undelivered_event_moves_no_head(broker: FakeBroker, signer: RecordSigner) -> None:
    settings = Settings(checkpoint_interval_s=3600)
    kept, lost = runs(2, "undelivered")
    broker.failing.add(lost[0].trace_id)
    async with KafkaRecorder(settings, JsonEncoder(), signer=signer) as recorder:
        await record(recorder, kept)
        with pytest.raises(RecorderError):
            await record(recorder, lost)
    (checkpoint,) = broker.checkpoints(settings.topics.checkpoints)
    assert {head["trace_id"] for head in checkpoint["heads"].values()} == {kept[0].trace_id}


@pytest.mark.parametrize(
    ("interval_s", "signed"), [(0.0, True), (0.02, False)], ids=["interval 0", "no signer"]
)
async def test_no_checkpoints_without_a_signer_or_with_interval_0(
    broker: FakeBroker, signer: RecordSigner, interval_s: float, signed: bool
) -> None:
    settings = Settings(checkpoint_interval_s=interval_s)
    recorder = KafkaRecorder(settings, JsonEncoder(), signer=signer if signed else None)
    async with recorder:
        await record(recorder, runs(1, "off")[0])
        await asyncio.sleep(0.1)
    assert broker.events(settings.topics.cot)  # recorded, but never checkpointed
    assert broker.checkpoints(settings.topics.checkpoints) == []


async def test_a_recorder_that_checkpoints_closes_within_one_timeout(
    unreachable_broker: Settings, signer: RecordSigner
) -> None:
    # The real producer, and no broker: flushing for the last checkpoint waits
    # out the timeout, and the purge that fails the events must not wait again.
    settings = unreachable_broker.model_copy(update={"checkpoint_interval_s": 3600.0})
    recorder = KafkaRecorder(
        settings, JsonEncoder(), signer=signer, producer_overrides={"log_level": 0}
    )
    await recorder.start()
    events = runs(1, "unreachable")[0]
    confirmations = [await recorder.emit(e) for e in events]
    started = time.monotonic()
    await asyncio.wait_for(recorder.close(timeout_s=1.0), 10)
    assert time.monotonic() - started < 1.8  # one timeout, not two
    assert recorder.pending() == 0
    for confirmation in confirmations:
        with pytest.raises(RecorderError):
            await confirmation
