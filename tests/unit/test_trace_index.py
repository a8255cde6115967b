"""The trace index keys traces by business key and agent: runs of different
agents are found by their own keys (narrowed by agent when keys clash), runs
recorded before the envelope carried a key are found by their application id,
and an index file of the older layout is rebuilt from the log."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import TraceNotFoundError
from flightrec.contracts.events import CotEvent, Decision, RunStarted
from flightrec.contracts.settings import Settings
from flightrec.replay.history import RunHistory, build_histories
from flightrec.replay.index import TraceIndex
from flightrec.replay.reader import CotReader, RawRecord, Segment
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

T = TypeVar("T")

LOAN = synthetic_trace_id(1, "index")
CLAIM = synthetic_trace_id(2, "index")
CLAIM_SAME_KEY = synthetic_trace_id(3, "index")
OLD = synthetic_trace_id(4, "index")
OLD_NO_START = synthetic_trace_id(5, "index")


class LogReader:
    """What the index uses of :class:`CotReader`, over an in-memory one-partition
    log of Avro records encoded by the real codec."""

    topic = "agent.cot"

    def __init__(self, codec: Codec, records: list[RawRecord]) -> None:
        self._codec = codec
        self.records = records
        self.segments_read: list[Segment] = []

    def partitions_sync(self) -> list[int]:
        return [0]

    def watermarks_sync(self, partition: int) -> tuple[int, int]:
        return 0, len(self.records)

    def iter_segment_sync(self, segment: Segment, **_: Any) -> Iterator[list[RawRecord]]:
        self.segments_read.append(segment)
        yield self.records[segment.first : segment.last + 1]

    async def run_sync(self, fn: Callable[[Any], T]) -> T:
        return fn(self)

    async def read_events(
        self, segments: Sequence[Segment], *, keys: frozenset[str], clamp: bool
    ) -> list[CotEvent]:
        records = [r for s in segments for r in self.records[s.first : s.last + 1]]
        return [await self._codec.decode_cot(r.value) for r in records if r.key in keys and r.value]

    def histories(self, events: list[CotEvent]) -> list[RunHistory]:
        return build_histories(events, chain_verifier=None)


async def _log(codec: Codec, events: list[CotEvent]) -> LogReader:
    records = [
        RawRecord(0, offset, offset, event.trace_id, event.kind, await codec.encode_cot(event))
        for offset, event in enumerate(events)
    ]
    return LogReader(codec, records)


def _index(reader: LogReader, codec: Codec, path: Path) -> TraceIndex:
    return TraceIndex(Settings(), cast(CotReader, reader), codec, path=path)


def _runs() -> list[CotEvent]:
    claim = {"key_field": "claim_id", "agent": "claims-triage", "outcome": "PAY"}
    return [
        *synthetic_run(LOAN, business_key="app-1"),
        *synthetic_run(CLAIM, business_key="CLM-9", **claim),  # type: ignore[arg-type]
        # Another agent whose subject happens to have the same id as the loan.
        *synthetic_run(CLAIM_SAME_KEY, business_key="app-1", **claim),  # type: ignore[arg-type]
    ]


async def test_lookup_by_key_finds_each_agents_runs(offline_codec: Codec, tmp_path: Path) -> None:
    reader = await _log(offline_codec, _runs())
    index = _index(reader, offline_codec, tmp_path / "index.sqlite3")
    try:
        (claim,) = await index.lookup_key("CLM-9")
        assert claim.trace_id == CLAIM and claim.business_key == "CLM-9"
        assert claim.first_event.agent == "claims-triage" and claim.outcome == "PAY"
        both = await index.lookup_key("app-1")
        assert {h.trace_id for h in both} == {LOAN, CLAIM_SAME_KEY}
        (loan,) = await index.lookup_key("app-1", agent="loan-officer")
        assert loan.trace_id == LOAN
        (other,) = await index.lookup_key("app-1", agent="claims-triage")
        assert other.trace_id == CLAIM_SAME_KEY
        with pytest.raises(TraceNotFoundError, match="no trace for this key"):
            await index.lookup_key("CLM-9", agent="loan-officer")
        rows = {r.trace_id: (r.business_key, r.agent, r.outcome) for r in index.list_sync()}
        assert rows == {
            LOAN: ("app-1", "loan-officer", "APPROVE"),
            CLAIM: ("CLM-9", "claims-triage", "PAY"),
            CLAIM_SAME_KEY: ("app-1", "claims-triage", "PAY"),
        }
        assert [r.trace_id for r in index.list_sync(agent="claims-triage", outcome="pay")] == [
            CLAIM,
            CLAIM_SAME_KEY,
        ]
    finally:
        index.close()


async def test_runs_recorded_before_the_key_are_found_by_application_id(
    offline_codec: Codec, tmp_path: Path
) -> None:
    old = synthetic_run(OLD, application_id="app-old", legacy=True)
    assert all(e.business_key is None for e in old)
    # A legacy run whose RUN_STARTED was lost names its subject only in DECISION.
    lost = [
        e
        for e in synthetic_run(OLD_NO_START, application_id="app-lost", legacy=True)
        if not isinstance(e, RunStarted)
    ]
    assert any(isinstance(e, Decision) and e.application_id == "app-lost" for e in lost)
    reader = await _log(offline_codec, old + lost)
    index = _index(reader, offline_codec, tmp_path / "index.sqlite3")
    try:
        (by_application,) = await index.lookup_application("app-old")
        (by_key,) = await index.lookup_key("app-old")
        assert by_application.trace_id == by_key.trace_id == OLD
        assert by_key.business_key == by_key.application_id == "app-old"
        (lost_start,) = await index.lookup_key("app-lost")
        assert lost_start.trace_id == OLD_NO_START and lost_start.run_started is None
        assert lost_start.business_key == "app-lost"
        with pytest.raises(TraceNotFoundError, match="no trace for this application") as err:
            await index.lookup_application("nobody", agent="loan-officer")
        assert err.value.context == {"application_id": "nobody", "agent": "loan-officer"}
    finally:
        index.close()


async def test_an_index_of_the_older_layout_is_rebuilt_from_the_log(
    offline_codec: Codec, tmp_path: Path
) -> None:
    path = tmp_path / "index.sqlite3"
    reader = await _log(offline_codec, _runs())
    # The layout before business keys: traces keyed by application_id, and
    # progress claiming the whole log was read (so only a rebuild re-reads it).
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE progress (partition INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);
        CREATE TABLE segments (trace_id TEXT NOT NULL, partition INTEGER NOT NULL,
            first_offset INTEGER NOT NULL, last_offset INTEGER NOT NULL,
            PRIMARY KEY (trace_id, partition, first_offset)) WITHOUT ROWID;
        CREATE TABLE traces (trace_id TEXT PRIMARY KEY, application_id TEXT, agent TEXT,
            agent_version TEXT, prompt_version TEXT, first_ts_ms INTEGER, last_ts_ms INTEGER,
            outcome TEXT, status TEXT, events INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX traces_application ON traces (application_id);
        """
    )
    old.execute("INSERT INTO progress VALUES (0, ?)", (len(reader.records),))
    old.execute("INSERT INTO traces (trace_id, application_id) VALUES ('stale', 'app-1')")
    old.commit()
    old.close()

    index = _index(reader, offline_codec, path)
    try:
        stats = await index.update()
        assert stats.records == len(reader.records)
        assert {h.trace_id for h in await index.lookup_key("app-1")} == {LOAN, CLAIM_SAME_KEY}
    finally:
        index.close()
    # Opened again under the same layout, nothing is re-read.
    index = _index(reader, offline_codec, path)
    try:
        assert (await index.update()).records == 0
        assert len(index.list_sync()) == 3
    finally:
        index.close()
