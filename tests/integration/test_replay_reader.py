"""Reader and trace index against the real broker and registry: lookup by trace id and
application id through the index (incremental), selection by agent version and time,
aborted attempts shown, schema v1 and v2 records read in one run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema

from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import TraceNotFoundError
from flightrec.contracts.events import CotEvent
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.headers import COT_KIND
from flightrec.contracts.schema_files import contract, subject_for
from flightrec.contracts.settings import Settings
from flightrec.replay.index import TraceIndex
from flightrec.replay.reader import CotReader, Segment
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

pytestmark = pytest.mark.integration


@pytest.fixture
async def codec(settings: Settings) -> AsyncIterator[Codec]:
    await asyncio.to_thread(apply_contracts, settings)
    codec = Codec(settings)
    await codec.start()
    yield codec
    await codec.close()


def create_cot_topic(settings: Settings) -> None:
    admin = AdminClient(settings.kafka_client_config())
    futures = admin.create_topics([NewTopic(settings.topics.cot, 3, 1)])
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:  # the stack fixture may have created it already
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


async def produce(
    settings: Settings, codec: Codec, events: Sequence[CotEvent], *, timestamp_ms: int | None = None
) -> None:
    producer = Producer(settings.producer_config())
    for event in events:
        producer.produce(
            settings.topics.cot,
            await codec.encode_cot(event),
            key=event.trace_id,
            headers=[(COT_KIND, event.kind.encode())],
            timestamp=timestamp_ms or 0,  # 0: the producer stamps the current time
        )
    assert await asyncio.to_thread(producer.flush, 30) == 0


async def check_index_lookup(settings: Settings, codec: Codec) -> None:
    create_cot_topic(settings)
    ids = [synthetic_trace_id(i, settings.topics.prefix) for i in range(12)]
    first = [
        e
        for i, t in enumerate(ids[:10])
        for e in synthetic_run(t, application_id=f"app-{i}", outcome="REFER", complete=i != 4)
    ]
    await produce(settings, codec, first)
    async with CotReader(settings, codec, chain_verifier=None) as reader:
        index = TraceIndex(settings, reader, codec)
        try:
            stats = await index.update()
            assert (stats.records, stats.traces_touched) == (len(first), 10)
            history = await index.lookup(ids[3])
            assert history.trace_id == ids[3]
            assert history.application_id == "app-3"
            assert history.outcome == "REFER"
            assert len(history.attempts[0].events) == 9
            (aborted,) = await index.lookup_application("app-4")
            assert aborted.authoritative is None and aborted.latest.status == "ABORTED"
            # Incremental: only the new records are read; a retry of app-4 appears.
            later = synthetic_run(ids[4], application_id="app-4", attempt=2) + synthetic_run(
                ids[10], application_id="app-10"
            )
            await produce(settings, codec, later)
            stats = await index.update()
            assert stats.records == len(later)
            retried = await index.lookup(ids[4])
            assert [(a.number, a.status) for a in retried.attempts] == [
                (1, "ABORTED"),
                (2, "COMPLETE"),
            ]
            assert retried.authoritative is not None and retried.authoritative.number == 2
            with pytest.raises(TraceNotFoundError):
                await index.lookup(ids[11])
            with pytest.raises(TraceNotFoundError):
                await index.lookup_application("app-none")
            listed = index.list_sync(outcome="REFER")
            assert {r.trace_id for r in listed} == set(ids[:4] + ids[5:10])
        finally:
            index.close()


async def check_selection_by_version_and_time(settings: Settings, codec: Codec) -> None:
    create_cot_topic(settings)
    old_time = datetime(2025, 1, 1, tzinfo=UTC)
    new_time = old_time + timedelta(days=30)
    v1 = [synthetic_trace_id(i, "v1" + settings.topics.prefix) for i in range(3)]
    v2 = [synthetic_trace_id(i, "v2" + settings.topics.prefix) for i in range(2)]
    for t in v1:
        await produce(
            settings, codec, synthetic_run(t), timestamp_ms=int(old_time.timestamp() * 1000)
        )
    for t in v2:
        await produce(
            settings,
            codec,
            synthetic_run(t, agent_version="2.0.0"),
            timestamp_ms=int(new_time.timestamp() * 1000),
        )
    async with CotReader(settings, codec, chain_verifier=None) as reader:
        by_version = await reader.read_histories(agent_version="2.0.0")
        assert sorted(h.trace_id for h in by_version) == sorted(v2)
        early = await reader.read_histories(until=old_time + timedelta(days=1))
        assert sorted(h.trace_id for h in early) == sorted(v1)
        late = await reader.read_histories(since=old_time + timedelta(days=1))
        assert sorted(h.trace_id for h in late) == sorted(v2)
        everything = await reader.read_histories()
        assert len(everything) == 5 and all(h.intact for h in everything)


async def check_schema_v1_and_v2_in_one_read(settings: Settings, codec: Codec) -> None:
    create_cot_topic(settings)
    old = synthetic_trace_id(1, "schema-v1" + settings.topics.prefix)
    new = synthetic_trace_id(2, "schema-v2" + settings.topics.prefix)
    await produce(settings, codec, synthetic_run(old))
    # Register v2 of the CoT schema: one added optional field (BACKWARD compatible).
    subject = subject_for(contract("cot_event"), settings)
    latest = codec.registry.get_latest_version(subject)
    schema = json.loads(latest.schema.schema_str or "{}")
    schema["fields"].append({"name": "review_note", "type": ["null", "string"], "default": None})
    codec.registry.register_schema(
        subject, Schema(json.dumps(schema), "AVRO", rule_set=latest.schema.rule_set)
    )
    v2_codec = Codec(settings, contracts=("cot_event",))
    await v2_codec.start()
    try:
        v2_id = v2_codec.registered("cot_event")
        assert v2_id is not None and v2_id.schema_id != latest.schema_id
        await produce(settings, v2_codec, synthetic_run(new, outcome="DECLINE"))
        async with CotReader(settings, v2_codec, chain_verifier=None) as reader:
            segments = await reader.scan_segments()
            raw = await reader.read_raw(segments)
            ids = {int.from_bytes(r.value[1:5], "big") for r in raw if r.value}
            assert ids == {latest.schema_id, v2_id.schema_id}
            histories = reader.histories(await reader.decode(raw))
            assert reader.undecodable == []
            outcomes = {h.trace_id: h.outcome for h in histories}
            assert outcomes == {old: "APPROVE", new: "DECLINE"}
    finally:
        await v2_codec.close()


async def test_index_lookup_by_trace_and_application(settings: Settings, codec: Codec) -> None:
    await check_index_lookup(settings, codec)


async def test_selection_by_agent_version_and_time(settings: Settings, codec: Codec) -> None:
    await check_selection_by_version_and_time(settings, codec)


async def test_schema_v1_and_v2_records_in_one_read(settings: Settings, codec: Codec) -> None:
    await check_schema_v1_and_v2_in_one_read(settings, codec)


async def test_reading_by_offsets_returns_exactly_that_range(
    settings: Settings, codec: Codec
) -> None:
    create_cot_topic(settings)
    ids = [synthetic_trace_id(i, "offsets" + settings.topics.prefix) for i in range(4)]
    await produce(settings, codec, [e for t in ids for e in synthetic_run(t)])
    async with CotReader(settings, codec, chain_verifier=None) as reader:
        everything = await reader.read_raw(await reader.scan_segments())
        # The records of one trace sit in one partition, contiguous here (one producer).
        target = ids[2]
        mine = [r for r in everything if r.key == target]
        partition = mine[0].partition
        first, last = mine[0].offset, mine[-1].offset
        assert {r.partition for r in mine} == {partition}
        got = await reader.read_raw([Segment(partition, first, last)])
        assert [(r.partition, r.offset) for r in got] == [
            (partition, o) for o in range(first, last + 1)
        ]
        others = [r for r in got if r.key != target]
        histories = reader.histories(await reader.decode(got))
        assert {h.trace_id for h in histories} == {target} | {r.key for r in others}
        # A range past the end is clamped to what exists, not an error.
        _, high = reader.watermarks_sync(partition)
        tail = await reader.read_raw([Segment(partition, high - 1, high + 100)])
        assert [r.offset for r in tail] == [high - 1]
