"""Records written before agents were definitions still read, verify and audit.

The golden recordings are written to a real topic under the CoT schema as it
was before the envelope carried the business key (``cot_event_loan_only.avsc``:
``application_id`` in the payloads, the outcome an Avro enum of the loan
labels, no decision document). Then ``flightrec contracts apply`` registers
today's schema on the same subject, under BACKWARD_TRANSITIVE. Read back with
today's code, every trace is intact, verifies as REPRODUCED and audits with
its application id as the subject and the loan decision as its document.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import fastavro
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema

from flightrec.contracts.avro_mapping import cot_to_avro
from flightrec.contracts.codec import Codec, registry_client
from flightrec.contracts.events import CotEvent, business_key_of
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.headers import COT_KIND
from flightrec.contracts.schema_files import contract, load_schema_file, subject_for
from flightrec.contracts.settings import Settings
from flightrec.replay.audit import audit_document
from flightrec.replay.reader import CotReader
from flightrec.replay.replayer import Replayer

from golden_io import GOLDEN_DIR, read_golden
from test_golden import NoLiveCalls

pytestmark = pytest.mark.integration

LOAN_ONLY_SCHEMA = GOLDEN_DIR / "cot_event_loan_only.avsc"


def _as_written_before(event: CotEvent) -> dict[str, Any]:
    """The Avro datum the loan-only schema took: the label in the enum field."""
    datum = cot_to_avro(event)
    for payload in ("decision", "run_completed"):
        if datum.get(payload) is not None:
            record = dict(datum[payload])
            record["outcome"] = record.pop("outcome_label")
            record.pop("document_json", None)
            datum[payload] = record
    datum.pop("business_key", None)
    return datum


def _framed(schema_id: int, parsed: Any, datum: dict[str, Any]) -> bytes:
    # Confluent's wire format: magic byte, schema id, Avro body.
    body = io.BytesIO()
    fastavro.schemaless_writer(body, parsed, datum)
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


async def test_records_of_the_loan_only_schema_verify_and_audit(settings: Settings) -> None:
    events = read_golden(GOLDEN_DIR / "loan_standard.jsonl")
    assert all(e.business_key is None for e in events), "the golden log predates the key"
    old_schema = load_schema_file(LOAN_ONLY_SCHEMA)
    subject = subject_for(contract("cot_event"), settings)
    client = registry_client(settings)
    try:
        old_id = await asyncio.to_thread(
            client.register_schema, subject, Schema(json.dumps(old_schema), "AVRO")
        )
    finally:
        client.close()
    parsed = fastavro.parse_schema(old_schema)
    producer = Producer(settings.producer_config())
    for event in events:
        producer.produce(
            settings.topics.cot,
            _framed(old_id, parsed, _as_written_before(event)),
            key=event.trace_id,
            headers=[(COT_KIND, event.kind.encode())],
        )
    assert await asyncio.to_thread(producer.flush, 30) == 0

    # Today's schema is a compatible evolution of the loan-only one.
    plan = await asyncio.to_thread(apply_contracts, settings)
    (cot,) = [s for s in plan.subjects if s.contract == "cot_event"]
    assert cot.action == "NEW_VERSION" and cot.compatible
    assert cot.compatibility == "BACKWARD_TRANSITIVE"

    codec = Codec(settings, contracts=("cot_event",))
    await codec.start()
    try:
        async with CotReader(settings, codec) as reader:
            raw = await reader.read_raw(await reader.scan_segments())
            assert {int.from_bytes(r.value[1:5], "big") for r in raw if r.value} == {old_id}
            histories = reader.histories(await reader.decode(raw))
    finally:
        await codec.close()
    traces = {e.trace_id for e in events}
    assert sorted(h.trace_id for h in histories) == sorted(traces)
    # Decoded under today's schema, each event is the one that was written: the
    # chain (hashed over the recorded form) is intact.
    assert all(h.intact for h in histories)
    decoded = {
        (e.trace_id, e.seq, e.attempt): e for h in histories for a in h.attempts for e in a.events
    }
    assert all(decoded[(e.trace_id, e.seq, e.attempt)] == e for e in events)

    replayer = Replayer(NoLiveCalls(Settings(bureau_url="http://127.0.0.1:9")))
    outcomes = [await replayer.verify(h) for h in histories]
    assert {o.status for o in outcomes} == {"REPRODUCED"}, [
        (o.trace_id, o.expected, o.actual) for o in outcomes if o.status != "REPRODUCED"
    ]

    for history in histories:
        started = history.run_started
        assert started is not None and started.application_id is not None
        assert business_key_of(started) == started.application_id
        text = json.dumps(audit_document(history, []))
        assert started.application_id in text
