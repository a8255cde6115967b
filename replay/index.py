"""``TraceIndex``: find a trace's records without scanning the log.

A SQLite file (under ``settings.stack_dir``) maps

* trace id -> the offset *segments* of its partition that hold its records,
* trace id -> business key (the subject: a loan application id, a claim
  id...), agent, versions, first/last time, outcome,
* partition -> the next offset not yet indexed.

``update()`` consumes only what was written since the last update, reading
record keys (key = trace id) and the ``flightrec-kind`` header; only
``RUN_STARTED`` (business key, agent), ``RUN_COMPLETED`` / ``RUN_FAILED``
(outcome) and, when no earlier record named the key, ``DECISION`` records are
decoded. A lookup is one indexed SQLite query plus an ``assign``/seek read of
just that trace's offset ranges, so its cost does not grow with the log.

The file is a cache of the log: one written under another layout
(``PRAGMA user_version``) is dropped and rebuilt from the log on open, which
loses nothing a lookup could still read.

A trace's records are close together in its partition (one run), but a retry
after a crash may come much later; a new segment starts when the next record
is more than ``segment_gap`` offsets past the last one, so a lookup never reads
the records in between.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka.schema_registry.common.avro import AVRO_TYPE
from confluent_kafka.schema_registry.common.serde import SchemaId
from pydantic import ValidationError

from flightrec.contracts.avro_mapping import cot_from_avro
from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import DecodeError, TraceNotFoundError
from flightrec.contracts.events import (
    TERMINAL_KINDS,
    CotEvent,
    Decision,
    RunCompleted,
    RunFailed,
    RunStarted,
    business_key_of,
)
from flightrec.contracts.settings import Settings
from flightrec.replay.history import RunHistory
from flightrec.replay.reader import CotReader, RawRecord, Segment

__all__ = ["IndexStats", "TraceIndex", "TraceSummary", "index_path"]

# RUN_COMPLETED carries the outcome, so DECISION is decoded only for the key of
# a trace whose RUN_STARTED was not seen (older records name it nowhere else).
_DECODED_KINDS = frozenset({"RUN_STARTED"}) | TERMINAL_KINDS
_KEY_KINDS = frozenset({"DECISION"})
_COMMIT_EVERY = 50_000

# The layout below; bump it when it changes (an index of another layout is rebuilt).
# 0: files written before the version was recorded (traces keyed by application_id).
_LAYOUT_VERSION = 1
_DROP = """
DROP TABLE IF EXISTS progress;
DROP TABLE IF EXISTS segments;
DROP TABLE IF EXISTS traces;
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS progress (
    partition INTEGER PRIMARY KEY,
    next_offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    trace_id TEXT NOT NULL,
    partition INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    PRIMARY KEY (trace_id, partition, first_offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS traces (
    trace_id TEXT PRIMARY KEY,
    business_key TEXT,
    agent TEXT,
    agent_version TEXT,
    prompt_version TEXT,
    first_ts_ms INTEGER,
    last_ts_ms INTEGER,
    outcome TEXT,
    status TEXT,
    events INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS traces_key ON traces (business_key, agent);
CREATE INDEX IF NOT EXISTS traces_first_ts ON traces (first_ts_ms);
"""


def index_path(settings: Settings, topic: str | None = None) -> Path:
    """Where the index of ``topic`` (default: the CoT topic) lives."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", topic or settings.topics.cot)
    return settings.stack_dir / "index" / f"{name}.sqlite3"


@dataclass(frozen=True)
class IndexStats:
    """What one ``update()`` did."""

    records: int
    traces_touched: int


@dataclass(frozen=True)
class TraceSummary:
    """One row of the trace list (``flightrec traces``)."""

    trace_id: str
    business_key: str | None
    agent: str | None
    agent_version: str | None
    prompt_version: str | None
    first_ts: datetime | None
    last_ts: datetime | None
    outcome: str | None
    status: str | None
    events: int


@dataclass
class _Pending:
    """Facts about one trace gathered in the current batch (merged into SQLite on commit)."""

    segments: list[list[int]] = field(default_factory=list)  # [partition, first, last]
    business_key: str | None = None
    agent: str | None = None
    agent_version: str | None = None
    prompt_version: str | None = None
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    outcome: str | None = None
    status: str | None = None
    events: int = 0


class _WriterSchemaDecoder:
    """Decodes CoT bytes with fastavro and the record's own writer schema.

    The index needs a few fields of a few records; confluent's deserializer
    costs ~0.3 ms a record (schema resolution, rule hooks), fastavro with the
    cached writer schema ~10 us, which is what lets a million-event log be
    indexed in seconds. Anything unusual falls back to the codec.
    """

    def __init__(self, codec: Codec) -> None:
        self._codec = codec
        self._schemas: dict[int, Any] = {}

    def decode(self, data: bytes) -> CotEvent:
        try:
            # The wire format's header is parsed by confluent-kafka's own SchemaId.
            header = SchemaId(AVRO_TYPE)
            body = header.from_bytes(io.BytesIO(data))
            schema_id = header.id
            if schema_id is not None:
                schema = self._schemas.get(schema_id)
                if schema is None:
                    registered = self._codec.registry.get_schema(schema_id)
                    schema = fastavro.parse_schema(json.loads(registered.schema_str or "null"))
                    self._schemas[schema_id] = schema
                datum = fastavro.schemaless_reader(body, schema, None)
                if isinstance(datum, dict):
                    return cot_from_avro(datum)
        except Exception:  # fall through to the codec, which reports properly
            pass
        event: CotEvent = self._codec.decode_sync("cot_event", data)
        return event


def _ts(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


class TraceIndex:
    """Incremental trace index over ``reader``'s topic; decode with ``codec``."""

    def __init__(
        self,
        settings: Settings,
        reader: CotReader,
        codec: Codec,
        *,
        path: Path | None = None,
        segment_gap: int = 1000,
    ) -> None:
        self._reader = reader
        self._codec = codec
        self._decoder = _WriterSchemaDecoder(codec)
        self.path = path if path is not None else index_path(settings, reader.topic)
        self._segment_gap = segment_gap
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Used from worker threads, one at a time (guarded by _db_lock).
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._open_layout()
        self._db_lock = threading.Lock()

    def _open_layout(self) -> None:
        # Rebuilt rather than migrated: every fact is re-read from the log, so
        # no row keeps a value an older layout derived differently (the key of
        # a run recorded after that layout's writer stopped reading it).
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version != _LAYOUT_VERSION:
            self._db.executescript(_DROP)
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {_LAYOUT_VERSION}")

    def close(self) -> None:
        """Close the SQLite file."""
        with self._db_lock:
            self._db.close()

    # --------------------------------------------------------------- update

    async def update(self) -> IndexStats:
        """Index everything written since the last update (reads only new records)."""
        return await self._reader.run_sync(self._update_sync)

    def _update_sync(self, reader: CotReader) -> IndexStats:
        records = 0
        touched: set[str] = set()
        for partition in reader.partitions_sync():
            low, high = reader.watermarks_sync(partition)
            start = self._progress(partition)
            if start > high:
                # The topic was recreated (offsets went back): this partition's
                # entries point at records that no longer exist.
                self._forget_partition(partition)
                start = 0
            start = max(start, low)
            if start >= high:
                continue
            pending: dict[str, _Pending] = {}
            count = 0
            for batch in reader.iter_segment_sync(
                Segment(partition, start, high - 1), clamp=False, batch_size=10_000
            ):
                for record in batch:
                    records += 1
                    count += 1
                    if record.key is None:  # no trace id: nothing to file it under
                        continue
                    touched.add(record.key)
                    self._note(pending.setdefault(record.key, _Pending()), record)
                if count >= _COMMIT_EVERY:
                    self._commit(partition, pending, batch[-1].offset + 1)
                    pending, count = {}, 0
            self._commit(partition, pending, high)
        return IndexStats(records=records, traces_touched=len(touched))

    def _note(self, entry: _Pending, record: RawRecord) -> None:
        """Fold one record into ``entry`` (a record that does not decode adds no facts)."""
        entry.events += 1
        ts = record.timestamp_ms
        entry.first_ts_ms = ts if entry.first_ts_ms is None else min(entry.first_ts_ms, ts)
        entry.last_ts_ms = ts if entry.last_ts_ms is None else max(entry.last_ts_ms, ts)
        last = entry.segments[-1] if entry.segments else None
        if (
            last is not None
            and last[0] == record.partition
            and record.offset - last[2] <= self._segment_gap
        ):
            last[2] = record.offset
        else:
            entry.segments.append([record.partition, record.offset, record.offset])
        # Without the header (records from older writers) we cannot tell: decode.
        if record.kind is not None and not self._wanted(record.kind, entry):
            return
        if record.value is None:
            return
        try:
            event = self._decoder.decode(record.value)
        except (DecodeError, ValidationError):
            return
        if isinstance(event, RunStarted):
            entry.business_key = business_key_of(event) or entry.business_key
            entry.agent = event.agent
            entry.agent_version = event.agent_version
            entry.prompt_version = event.prompt_version
            entry.status = entry.status or "RUNNING"
        elif isinstance(event, Decision):
            entry.outcome = event.outcome
        elif isinstance(event, RunCompleted):
            entry.outcome, entry.status = event.outcome, "COMPLETED"
        elif isinstance(event, RunFailed):
            entry.status = "FAILED"
        # RUN_STARTED may be lost, or in an earlier batch: every event names the
        # agent, and those recorded today the key too.
        entry.business_key = entry.business_key or business_key_of(event)
        entry.agent = entry.agent or event.agent

    @staticmethod
    def _wanted(kind: str, entry: _Pending) -> bool:
        """Whether a record of ``kind`` adds facts ``entry`` lacks (worth decoding)."""
        return kind in _DECODED_KINDS or (kind in _KEY_KINDS and entry.business_key is None)

    def _progress(self, partition: int) -> int:
        with self._db_lock:
            row = self._db.execute(
                "SELECT next_offset FROM progress WHERE partition = ?", (partition,)
            ).fetchone()
        return int(row[0]) if row is not None else 0

    def _forget_partition(self, partition: int) -> None:
        with self._db_lock:
            self._db.execute("BEGIN")
            self._db.execute(
                "DELETE FROM traces WHERE trace_id IN "
                "(SELECT trace_id FROM segments WHERE partition = ?)",
                (partition,),
            )
            self._db.execute("DELETE FROM segments WHERE partition = ?", (partition,))
            self._db.execute("DELETE FROM progress WHERE partition = ?", (partition,))
            self._db.execute("COMMIT")

    def _commit(self, partition: int, pending: dict[str, _Pending], next_offset: int) -> None:
        # One transaction per batch: progress moves only with the entries it covers,
        # so an interrupted update resumes without double-counting.
        with self._db_lock:
            db = self._db
            db.execute("BEGIN")
            try:
                for trace_id, entry in pending.items():
                    self._merge(db, trace_id, entry)
                db.execute(
                    "INSERT INTO progress (partition, next_offset) VALUES (?, ?) "
                    "ON CONFLICT (partition) DO UPDATE SET next_offset = excluded.next_offset",
                    (partition, next_offset),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _merge(self, db: sqlite3.Connection, trace_id: str, entry: _Pending) -> None:
        segments = entry.segments
        row = db.execute(
            "SELECT partition, first_offset, last_offset FROM segments WHERE trace_id = ? "
            "ORDER BY last_offset DESC LIMIT 1",
            (trace_id,),
        ).fetchone()
        if (
            row is not None
            and segments
            and row[0] == segments[0][0]
            and segments[0][1] - row[2] <= self._segment_gap
        ):
            db.execute(
                "UPDATE segments SET last_offset = ? WHERE trace_id = ? AND partition = ? "
                "AND first_offset = ?",
                (segments[0][2], trace_id, row[0], row[1]),
            )
            segments = segments[1:]
        db.executemany(
            "INSERT OR REPLACE INTO segments (trace_id, partition, first_offset, last_offset) "
            "VALUES (?, ?, ?, ?)",
            [(trace_id, p, f, last) for p, f, last in segments],
        )
        db.execute(
            """
            INSERT INTO traces (trace_id, business_key, agent, agent_version, prompt_version,
                                first_ts_ms, last_ts_ms, outcome, status, events)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (trace_id) DO UPDATE SET
                business_key = COALESCE(excluded.business_key, traces.business_key),
                agent = COALESCE(excluded.agent, traces.agent),
                agent_version = COALESCE(excluded.agent_version, traces.agent_version),
                prompt_version = COALESCE(excluded.prompt_version, traces.prompt_version),
                first_ts_ms = MIN(traces.first_ts_ms, excluded.first_ts_ms),
                last_ts_ms = MAX(traces.last_ts_ms, excluded.last_ts_ms),
                outcome = COALESCE(excluded.outcome, traces.outcome),
                status = COALESCE(excluded.status, traces.status),
                events = traces.events + excluded.events
            """,
            (
                trace_id,
                entry.business_key,
                entry.agent,
                entry.agent_version,
                entry.prompt_version,
                entry.first_ts_ms,
                entry.last_ts_ms,
                entry.outcome,
                entry.status,
                entry.events,
            ),
        )

    # --------------------------------------------------------------- lookup

    def segments_sync(self, trace_id: str) -> list[Segment]:
        """The offset segments holding ``trace_id`` (empty when unknown)."""
        with self._db_lock:
            rows = self._db.execute(
                "SELECT partition, first_offset, last_offset FROM segments WHERE trace_id = ? "
                "ORDER BY partition, first_offset",
                (trace_id,),
            ).fetchall()
        return [Segment(int(p), int(f), int(last)) for p, f, last in rows]

    def trace_ids_for_key_sync(self, key: str, *, agent: str | None = None) -> list[str]:
        """Trace ids recorded for business key ``key`` (of ``agent`` only, when
        given), oldest first."""
        sql = "SELECT trace_id FROM traces WHERE business_key = ?"
        params = [key]
        if agent is not None:
            sql += " AND agent = ?"
            params.append(agent)
        with self._db_lock:
            rows = self._db.execute(f"{sql} ORDER BY first_ts_ms, trace_id", params).fetchall()
        return [str(r[0]) for r in rows]

    async def lookup(self, trace_id: str, *, refresh: bool = True) -> RunHistory:
        """The history of one trace; ``TraceNotFoundError`` if the log has none.

        With ``refresh``, an id the index does not know triggers one
        incremental ``update()`` before giving up (it may have just been written).
        """
        segments = self.segments_sync(trace_id)
        if not segments and refresh:
            await self.update()
            segments = self.segments_sync(trace_id)
        if not segments:
            raise TraceNotFoundError("no such trace in the CoT log", trace_id=trace_id)
        events = await self._reader.read_events(segments, keys=frozenset({trace_id}), clamp=False)
        histories = self._reader.histories(events)
        if not histories:
            raise TraceNotFoundError(
                "the index knows this trace but its records are gone (retention?)",
                trace_id=trace_id,
            )
        return histories[0]

    async def lookup_many(self, trace_ids: Sequence[str]) -> list[RunHistory]:
        """Histories of several traces (each must exist)."""
        return [await self.lookup(t) for t in trace_ids]

    async def lookup_key(
        self, key: str, *, agent: str | None = None, refresh: bool = True
    ) -> list[RunHistory]:
        """Every trace recorded for business key ``key`` (usually one), oldest
        first; only ``agent``'s when given (two agents may share a key).

        ``TraceNotFoundError`` when there is none, after one incremental
        ``update()`` with ``refresh``."""
        trace_ids = self.trace_ids_for_key_sync(key, agent=agent)
        if not trace_ids and refresh:
            await self.update()
            trace_ids = self.trace_ids_for_key_sync(key, agent=agent)
        if not trace_ids:
            context: dict[str, Any] = {"key": key}
            if agent is not None:
                context["agent"] = agent
            raise TraceNotFoundError("no trace for this key in the CoT log", **context)
        return [await self.lookup(t, refresh=False) for t in trace_ids]

    async def lookup_application(
        self, application_id: str, *, agent: str | None = None, refresh: bool = True
    ) -> list[RunHistory]:
        """The loan agent's name for :meth:`lookup_key` (an application id is its
        business key); the error names the application."""
        try:
            return await self.lookup_key(application_id, agent=agent, refresh=refresh)
        except TraceNotFoundError as exc:
            raise TraceNotFoundError(
                "no trace for this application in the CoT log",
                application_id=application_id,
                **{k: v for k, v in exc.context.items() if k != "key"},
            ) from None

    def list_sync(
        self,
        *,
        agent: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        outcome: str | None = None,
        limit: int | None = None,
    ) -> list[TraceSummary]:
        """Summaries of indexed traces, oldest first, filtered."""
        clauses: list[str] = []
        params: list[str | int] = []
        if agent is not None:
            clauses.append("agent = ?")
            params.append(agent)
        if since is not None:
            clauses.append("last_ts_ms >= ?")
            params.append(int(since.timestamp() * 1000))
        if until is not None:
            clauses.append("first_ts_ms <= ?")
            params.append(int(until.timestamp() * 1000))
        if outcome is not None:
            clauses.append("(outcome = ? OR status = ?)")
            params.extend([outcome.upper(), outcome.upper()])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (
            "SELECT trace_id, business_key, agent, agent_version, prompt_version, "
            f"first_ts_ms, last_ts_ms, outcome, status, events FROM traces {where} "
            "ORDER BY first_ts_ms, trace_id"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._db_lock:
            rows = self._db.execute(sql, params).fetchall()
        return [
            TraceSummary(
                trace_id=r[0],
                business_key=r[1],
                agent=r[2],
                agent_version=r[3],
                prompt_version=r[4],
                first_ts=_ts(r[5]),
                last_ts=_ts(r[6]),
                outcome=r[7],
                status=r[8],
                events=int(r[9]),
            )
            for r in rows
        ]
