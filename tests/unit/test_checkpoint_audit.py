"""``flightrec checkpoint export | verify`` without a broker: an exported
checkpoint verifies against a log that holds its heads, and every way it can
fail is named on its line (a head the log no longer holds, a changed
checkpoint, an untrusted key, a line that is no checkpoint). The log read from
Kafka: tests/integration/test_checkpoints.py."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from flightrec.checkpoint_audit import (
    CheckpointVerifier,
    KafkaCotLog,
    export_checkpoints,
    export_line,
)
from flightrec.cli import build_parser, main
from flightrec.contracts.chain import ChainSealer, event_hash
from flightrec.contracts.checkpoint import Checkpoint, CheckpointHead
from flightrec.contracts.events import CotEvent, read_cot_event
from flightrec.contracts.signing import Keyring, RecordSigner
from flightrec.replay.reader import CotReader, RawRecord, Segment, UndecodableRecord
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

TOPIC = "agent.cot.checkpoints"
T = TypeVar("T")


class FakeLog:
    """The CoT log as a dict: (partition, offset) -> event, or why there is none."""

    def __init__(self, events: dict[tuple[int, int], CotEvent | str]) -> None:
        self.events = events
        self.asked: list[tuple[int, int]] = []

    async def event_at(self, partition: int, offset: int) -> CotEvent | str:
        self.asked.append((partition, offset))
        return self.events.get((partition, offset), f"partition {partition}: nothing there")


def sealed(index: int) -> list[CotEvent]:
    sealer = ChainSealer()
    return [sealer.seal(e) for e in synthetic_run(synthetic_trace_id(index, "audit"))]


def head_of(event: CotEvent, offset: int) -> CheckpointHead:
    return CheckpointHead(
        offset=offset,
        trace_id=event.trace_id,
        attempt=event.attempt,
        seq=event.seq,
        head=event_hash(event),
    )


def exported(checkpoint: Checkpoint, offset: int = 7) -> str:
    return export_line(TOPIC, RawRecord(0, offset, 0, checkpoint.writer, None, checkpoint.encode()))


@pytest.fixture
def world(signer: RecordSigner) -> tuple[FakeLog, Checkpoint]:
    """Two runs on partitions 1 and 4, and a checkpoint of their last events."""
    first, second = sealed(1), sealed(2)
    log = FakeLog({(1, 20): first[-1], (4, 3): second[-1], (4, 2): second[-2]})
    heads = {1: head_of(first[-1], 20), 4: head_of(second[-1], 3)}
    return log, Checkpoint.signed("worker-1", heads, signer)


def test_the_export_line_keeps_the_record_as_written_and_says_where_it_was(
    world: tuple[FakeLog, Checkpoint],
) -> None:
    _, checkpoint = world
    line = json.loads(exported(checkpoint))
    assert line == {
        "topic": TOPIC,
        "partition": 0,
        "offset": 7,
        "checkpoint": json.loads(checkpoint.encode()),
    }


async def test_a_checkpoint_whose_heads_the_log_holds_is_ok(
    world: tuple[FakeLog, Checkpoint], signer: RecordSigner
) -> None:
    log, checkpoint = world
    verifier = CheckpointVerifier(Keyring([signer.public_key]), log)
    (verdict,) = await verifier.verify_lines([exported(checkpoint), ""])
    assert verdict.ok, verdict.problems
    assert verdict.describe().startswith(f"OK    line 1 ({TOPIC}/0@7) writer worker-1 at ")
    assert sorted(log.asked) == [(1, 20), (4, 3)]


async def test_a_log_rewritten_at_a_checkpointed_offset_fails(
    world: tuple[FakeLog, Checkpoint], signer: RecordSigner
) -> None:
    log, checkpoint = world
    log.events[(4, 3)] = log.events[(4, 2)]  # another event where the head was
    log.events[(1, 20)] = "partition 1 offset 20: the log ends before it"
    verifier = CheckpointVerifier(Keyring([signer.public_key]), log)
    verdict = await verifier.verify_line(exported(checkpoint), 1)
    assert not verdict.ok
    assert verdict.problems[0] == "partition 1 offset 20: the log ends before it"
    assert verdict.problems[1].startswith("partition 4 offset 3 holds ")
    assert len(verdict.problems) == 2  # the signature itself is fine
    assert verdict.describe().startswith("FAIL  line 1")


async def test_a_head_edited_in_the_export_fails_twice(
    world: tuple[FakeLog, Checkpoint], signer: RecordSigner
) -> None:
    log, checkpoint = world
    line = json.loads(exported(checkpoint))
    line["checkpoint"]["heads"]["4"]["head"] = "00" * 32
    verifier = CheckpointVerifier(Keyring([signer.public_key]), log)
    verdict = await verifier.verify_line(json.dumps(line), 1)
    assert verdict.problems[0].endswith("(changed after signing)")
    assert verdict.problems[1].endswith(f"is not the checkpointed {'00' * 32}")


async def test_a_checkpoint_of_an_untrusted_key_fails(
    world: tuple[FakeLog, Checkpoint], signer: RecordSigner
) -> None:
    log, checkpoint = world
    verifier = CheckpointVerifier(Keyring([RecordSigner.generate().public_key]), log)
    verdict = await verifier.verify_line(exported(checkpoint), 1)
    assert verdict.problems == [f"signed by a key that is not trusted ({signer.key_id})"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "not JSON"),
        ("[1]", "not an exported checkpoint"),
        ('{"topic": "t", "partition": 0, "offset": 1, "undecodable": "x"}', "no checkpoint"),
        ('{"checkpoint": {"writer": "w"}}', "not a checkpoint"),
    ],
)
async def test_a_line_that_is_no_checkpoint_fails(line: str, problem: str) -> None:
    verdict = await CheckpointVerifier(Keyring(), FakeLog({})).verify_line(line, 3)
    assert verdict.source.startswith("line 3")
    assert len(verdict.problems) == 1 and verdict.problems[0].startswith(problem)


def test_an_undecodable_checkpoint_record_is_exported_all_the_same() -> None:
    line = json.loads(export_line(TOPIC, RawRecord(0, 4, 0, None, None, b"\x00garbage")))
    assert line == {"topic": TOPIC, "partition": 0, "offset": 4, "undecodable": "\x00garbage"}


def test_the_commands_are_registered() -> None:
    args = build_parser().parse_args(["checkpoint", "export", "--out", "x.jsonl", "--since", "2h"])
    assert (args.out, args.since) == (Path("x.jsonl"), "2h")
    args = build_parser().parse_args(["checkpoint", "verify", "x.jsonl"])
    assert args.file == Path("x.jsonl")


@pytest.mark.parametrize("content", [None, "", "\n  \n"], ids=["missing", "empty", "blank"])
def test_verify_without_checkpoints_to_check_is_bad_input(
    tmp_path: Path, content: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "checkpoints.jsonl"
    if content is not None:
        path.write_text(content)
    assert main(["checkpoint", "verify", str(path)]) == 2
    assert str(path) in capsys.readouterr().err


# ------------------------------------------- the Kafka side, on a fake reader


class FakeReader:
    """What the export and :class:`KafkaCotLog` use of a ``CotReader``, over
    ``records`` per partition (offsets from ``low``)."""

    def __init__(self, topic: str, records: dict[int, list[RawRecord]], low: int = 0) -> None:
        self.topic = topic
        self.records = records
        self.low = low
        self.reads: list[Segment] = []
        self.undecodable: list[UndecodableRecord] = []

    async def run_sync(self, fn: Callable[[Any], T]) -> T:
        return fn(self)

    def partitions_sync(self) -> list[int]:
        return sorted(self.records)

    def watermarks_sync(self, partition: int) -> tuple[int, int]:
        return self.low, self.low + len(self.records[partition])

    async def scan_segments(self, *, since: datetime | None = None) -> list[Segment]:
        return [Segment(p, self.low, self.low + len(rs) - 1) for p, rs in self.records.items()]

    def iter_segment_sync(self, segment: Segment) -> Iterator[list[RawRecord]]:
        self.reads.append(segment)
        records = self.records[segment.partition]
        yield records[segment.first - self.low : segment.last - self.low + 1]

    async def read_raw(self, segments: list[Segment], *, clamp: bool) -> list[RawRecord]:
        return [
            r for segment in segments for batch in self.iter_segment_sync(segment) for r in batch
        ]

    async def decode(self, records: list[RawRecord]) -> list[CotEvent]:
        events = []
        for record in records:
            try:
                events.append(read_cot_event(record.value))
            except ValueError as exc:
                self.undecodable.append(
                    UndecodableRecord(record.partition, record.offset, record.key, str(exc))
                )
        return events


def raw(partition: int, offset: int, value: bytes, timestamp_ms: int = 0) -> RawRecord:
    return RawRecord(partition, offset, timestamp_ms, None, None, value)


async def test_export_writes_each_checkpoint_since_the_time_given(
    world: tuple[FakeLog, Checkpoint],
) -> None:
    _, checkpoint = world
    at = datetime(2025, 5, 1, tzinfo=UTC)
    ms = int(at.timestamp() * 1000)
    reader = FakeReader(
        TOPIC,
        {
            0: [
                raw(0, 0, b"old", ms - 1),
                raw(0, 1, checkpoint.encode(), ms),
                raw(0, 2, b"x", ms + 1),
            ]
        },
    )
    out = io.StringIO()
    assert await export_checkpoints(cast(CotReader, reader), out, since=at) == 2
    lines = [json.loads(text) for text in out.getvalue().splitlines()]
    assert [(line["topic"], line["offset"]) for line in lines] == [(TOPIC, 1), (TOPIC, 2)]
    assert lines[0]["checkpoint"] == json.loads(checkpoint.encode())
    out = io.StringIO()
    assert await export_checkpoints(cast(CotReader, reader), out) == 3


async def test_the_kafka_log_names_what_it_does_not_hold_and_reads_each_offset_once() -> None:
    events = sealed(3)
    records = [raw(2, 10 + i, e.model_dump_json().encode()) for i, e in enumerate(events[:3])]
    records.append(raw(2, 13, b"not an event"))
    reader = FakeReader("agent.cot", {2: records}, low=10)
    log = KafkaCotLog(cast(CotReader, reader))

    assert await log.event_at(2, 11) == events[1]
    assert await log.event_at(2, 11) == events[1]
    assert reader.reads == [Segment(2, 11, 11)]  # asked twice, read once
    assert await log.event_at(5, 0) == "partition 5 offset 0: agent.cot has no partition 5"
    assert await log.event_at(2, 14) == (
        "partition 2 offset 14: the log ends before it (next offset 14): "
        "cut short or rewritten after the checkpoint"
    )
    assert (
        await log.event_at(2, 9) == "partition 2 offset 9: no longer in the log (it starts at 10)"
    )
    undecodable = await log.event_at(2, 13)
    assert isinstance(undecodable, str)
    assert undecodable.startswith("partition 2 offset 13: not a CoT event (")
