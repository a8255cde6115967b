"""A log holding CoT events written under schema version 1 and version 2 replays in
one run: the golden recordings are produced to a real topic, half of them after a
compatible v2 of the CoT schema is registered, then read back and verified."""

from __future__ import annotations

import asyncio
import json

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema

from flightrec.contracts.codec import Codec
from flightrec.contracts.events import CotEvent
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.headers import COT_KIND
from flightrec.contracts.schema_files import contract, subject_for
from flightrec.contracts.settings import Settings
from flightrec.replay.reader import CotReader
from flightrec.replay.replayer import Replayer

from golden_io import GOLDEN_DIR, read_golden
from test_golden import NoLiveCalls

pytestmark = pytest.mark.integration


async def _produce(settings: Settings, codec: Codec, events: list[CotEvent]) -> None:
    producer = Producer(settings.producer_config())
    for event in events:
        producer.produce(
            settings.topics.cot,
            await codec.encode_cot(event),
            key=event.trace_id,
            headers=[(COT_KIND, event.kind.encode())],
        )
    assert await asyncio.to_thread(producer.flush, 30) == 0


def _register_v2(codec: Codec, settings: Settings) -> int:
    """Register a BACKWARD compatible v2 (one optional field more); its schema id."""
    subject = subject_for(contract("cot_event"), settings)
    latest = codec.registry.get_latest_version(subject)
    schema = json.loads(latest.schema.schema_str or "{}")
    schema["fields"].append({"name": "review_note", "type": ["null", "string"], "default": None})
    return int(
        codec.registry.register_schema(
            subject, Schema(json.dumps(schema), "AVRO", rule_set=latest.schema.rule_set)
        )
    )


async def test_log_of_schema_v1_and_v2_verifies_in_one_run(settings: Settings) -> None:
    await asyncio.to_thread(apply_contracts, settings)  # topics exist: the fixture made them
    events = read_golden(GOLDEN_DIR / "loan_standard.jsonl")
    traces = list(dict.fromkeys(e.trace_id for e in events))
    early = set(traces[: len(traces) // 2])

    v1 = Codec(settings, contracts=("cot_event",))
    await v1.start()
    try:
        v1_id = v1.registered("cot_event")
        assert v1_id is not None
        await _produce(settings, v1, [e for e in events if e.trace_id in early])
        v2_id = _register_v2(v1, settings)
    finally:
        await v1.close()
    assert v2_id != v1_id.schema_id

    v2 = Codec(settings, contracts=("cot_event",))
    await v2.start()
    try:
        await _produce(settings, v2, [e for e in events if e.trace_id not in early])
        async with CotReader(settings, v2) as reader:
            raw = await reader.read_raw(await reader.scan_segments())
            assert {int.from_bytes(r.value[1:5], "big") for r in raw if r.value} == {
                v1_id.schema_id,
                v2_id,
            }
            histories = reader.histories(await reader.decode(raw))
    finally:
        await v2.close()

    assert sorted(h.trace_id for h in histories) == sorted(traces)
    assert all(h.intact for h in histories)
    replayer = Replayer(NoLiveCalls(Settings(bureau_url="http://127.0.0.1:9")))
    outcomes = [await replayer.verify(h) for h in histories]
    assert {o.status for o in outcomes} == {"REPRODUCED"}
