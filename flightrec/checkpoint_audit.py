"""Checkpoints out of Kafka and back against the log: ``flightrec checkpoint export | verify``.

Export reads the checkpoint topic (``settings.topics.checkpoints``) and writes
one JSON line per checkpoint: the record as written, under ``checkpoint``,
with the ``topic``, ``partition`` and ``offset`` it was read from. Kept outside
Kafka, such a file is what proves later that the CoT log was not cut short or
rewritten before the checkpoint (docs/design.md, "Checkpoints of the log").

Verify takes such lines and checks each checkpoint: its signature against
the trusted keys (``keyring_for``), and for each partition it names, that the
CoT log still holds at that offset the event of that run and ``seq`` whose
chain hash is the one checkpointed. The log is read through :class:`CotLog`;
:class:`KafkaCotLog` reads ``agent.cot`` and decodes with the codec, as replay
does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TextIO

from flightrec.contracts.checkpoint import head_problem, read_checkpoint, signature_problem
from flightrec.contracts.errors import DecodeError
from flightrec.contracts.events import CotEvent
from flightrec.contracts.signing import Keyring
from flightrec.replay.reader import CotReader, RawRecord, Segment

__all__ = [
    "CheckpointVerdict",
    "CheckpointVerifier",
    "CotLog",
    "KafkaCotLog",
    "export_checkpoints",
    "export_line",
]


def export_line(topic: str, record: RawRecord) -> str:
    """The export line of one checkpoint record of ``topic`` (JSON, no newline).

    The checkpoint is kept as the JSON object it was written as; a record that
    is no JSON is exported too, its text under ``undecodable``, so that verify
    names it rather than the export hiding it.
    """
    line: dict[str, Any] = {"topic": topic, "partition": record.partition, "offset": record.offset}
    text = (record.value or b"").decode("utf-8", errors="replace")
    try:
        line["checkpoint"] = json.loads(text)
    except ValueError:
        line["undecodable"] = text
    return json.dumps(line, sort_keys=True, ensure_ascii=False)


async def export_checkpoints(reader: CotReader, out: TextIO, since: datetime | None = None) -> int:
    """Write every checkpoint of ``reader``'s topic written at or after ``since``
    (all by default) to ``out``, one line each (:func:`export_line`); returns how many.

    Records are streamed, a batch at a time, never held all at once."""
    segments = await reader.scan_segments(since=since)
    since_ms = None if since is None else int(since.timestamp() * 1000)
    topic = reader.topic

    def export(source: CotReader) -> int:
        count = 0
        for segment in segments:
            for batch in source.iter_segment_sync(segment):
                for record in batch:
                    if since_ms is not None and record.timestamp_ms < since_ms:
                        continue
                    out.write(export_line(topic, record) + "\n")
                    count += 1
        return count

    return await reader.run_sync(export)


class CotLog(Protocol):
    """The CoT log as a verifier reads it: the event at a partition's offset."""

    async def event_at(self, partition: int, offset: int) -> CotEvent | str:
        """The event at ``offset`` of ``partition``, or why there is none."""
        ...


class KafkaCotLog:
    """:class:`CotLog` on the CoT topic: ``reader`` reads it and decodes with its codec.

    Each position is read once, however many checkpoints name it."""

    def __init__(self, reader: CotReader) -> None:
        self._reader = reader
        self._partitions: list[int] | None = None
        self._found: dict[tuple[int, int], CotEvent | str] = {}

    async def event_at(self, partition: int, offset: int) -> CotEvent | str:
        """The decoded event at ``offset`` of ``partition``, or why there is none."""
        key = (partition, offset)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = await self._read(partition, offset)
        return found

    async def _read(self, partition: int, offset: int) -> CotEvent | str:
        reader = self._reader
        where = f"partition {partition} offset {offset}"
        if self._partitions is None:
            self._partitions = await reader.run_sync(lambda r: r.partitions_sync())
        if partition not in self._partitions:
            return f"{where}: {reader.topic} has no partition {partition}"
        low, high = await reader.run_sync(lambda r: r.watermarks_sync(partition))
        if offset >= high:
            return (
                f"{where}: the log ends before it (next offset {high}): "
                "cut short or rewritten after the checkpoint"
            )
        if offset < low:
            return f"{where}: no longer in the log (it starts at {low})"
        records = await reader.read_raw([Segment(partition, offset, offset)], clamp=False)
        if not records or records[0].offset != offset:
            return f"{where}: no record there"
        before = len(reader.undecodable)
        events = await reader.decode(records[:1])
        if not events:
            problems = reader.undecodable[before:]
            reason = problems[0].error if problems else "the record has no value"
            return f"{where}: not a CoT event ({reason})"
        return events[0]


@dataclass(frozen=True)
class CheckpointVerdict:
    """What verify found for one exported checkpoint: nothing (OK), or its problems."""

    source: str
    """Where the checkpoint came from: ``topic/partition@offset``, or the line number."""
    writer: str | None = None
    ts: str | None = None
    partitions: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def describe(self) -> str:
        """One line: ``OK`` or ``FAIL``, which checkpoint, and every problem."""
        about = self.source
        if self.writer is not None:
            about += f" writer {self.writer} at {self.ts}: {self.partitions} partition(s)"
        if self.ok:
            return f"OK    {about}"
        return f"FAIL  {about}: " + "; ".join(self.problems)


class CheckpointVerifier:
    """Checks exported checkpoints (:func:`export_line`) against ``keyring`` and ``log``."""

    def __init__(self, keyring: Keyring, log: CotLog) -> None:
        self._keyring = keyring
        self._log = log

    async def verify_lines(self, lines: Iterable[str]) -> list[CheckpointVerdict]:
        """One verdict per non-blank line, in order."""
        return [
            await self.verify_line(line, number)
            for number, line in enumerate(lines, start=1)
            if line.strip()
        ]

    async def verify_line(self, line: str, number: int) -> CheckpointVerdict:
        """The verdict on one exported line (``number`` names it when it says nothing else)."""
        source = f"line {number}"
        try:
            exported = json.loads(line)
        except ValueError:
            return CheckpointVerdict(source, problems=["not JSON"])
        if not isinstance(exported, dict):
            return CheckpointVerdict(source, problems=["not an exported checkpoint"])
        if {"topic", "partition", "offset"} <= exported.keys():
            source += f" ({exported['topic']}/{exported['partition']}@{exported['offset']})"
        record = exported.get("checkpoint")
        if not isinstance(record, dict):
            return CheckpointVerdict(source, problems=["no checkpoint on the line"])
        try:
            checkpoint = read_checkpoint(record)
        except DecodeError as exc:
            return CheckpointVerdict(source, problems=[str(exc)])
        problems: list[str] = []
        signature = signature_problem(record, self._keyring)
        if signature is not None:
            problems.append(signature)
        for partition, expected in sorted(checkpoint.heads.items()):
            found = await self._log.event_at(partition, expected.offset)
            problem = found if isinstance(found, str) else head_problem(partition, expected, found)
            if problem is not None:
                problems.append(problem)
        return CheckpointVerdict(
            source,
            writer=checkpoint.writer,
            ts=checkpoint.ts.isoformat(),
            partitions=len(checkpoint.heads),
            problems=problems,
        )
