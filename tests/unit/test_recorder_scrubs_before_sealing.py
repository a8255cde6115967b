"""``KafkaRecorder.emit`` scrubs a run's PII before it seals and encodes: what
reaches the encoder (and so the log) holds tokens, never the real values, and
its hash chain is over the scrubbed content, so the record verifies as written.

Driven offline through a real recorder and librdkafka producer with no broker to
talk to (as in test_recorder_undelivered.py): the encoder sees every event in
``emit``, before delivery is even tried."""

from __future__ import annotations

import asyncio
import json

from flightrec.contracts.chain import canonical_text, verify_chain
from flightrec.contracts.events import CotEvent, CotEventBase, Thought, ToolResult
from flightrec.contracts.settings import Settings
from flightrec.recorder.kafka_recorder import KafkaRecorder
from flightrec.recorder.pii import PiiGuard
from flightrec.testing.runs import synthetic_run, synthetic_trace_id
from flightrec.testing.samples import sample_application


class CapturingEncoder:
    """Stands in for the codec and keeps every event it is asked to encode."""

    def __init__(self) -> None:
        self.seen: list[CotEventBase] = []

    async def encode_cot(self, event: CotEventBase) -> bytes:
        self.seen.append(event)
        return event.model_dump_json().encode()


async def test_encoder_sees_only_tokens_chained_over_the_scrubbed_events(
    unreachable_broker: Settings,
) -> None:
    guard = PiiGuard(Settings())
    application = sample_application()
    view, vault = guard.tokenize(application)
    name, national_id = application.applicant_name, application.national_id
    assert vault[view["applicant_name"]] == name and vault[view["national_id"]] == national_id

    # A model and a tool that echo real values back, mid-run (each leaky event
    # has a successor, whose prev_hash must link to the event as written).
    events: list[CotEvent] = []
    for event in synthetic_run(synthetic_trace_id(1, "scrub")):
        if isinstance(event, Thought):
            event = event.model_copy(update={"reasoning": f"{name} looks reliable"})
        elif isinstance(event, ToolResult):
            echoed = json.dumps({"name": name, "id": national_id, "score": 720})
            event = event.model_copy(update={"result_json": echoed})
        events.append(event)
    leaky = [e for e in events if name in canonical_text(e)]
    assert len(leaky) == 2 and all(e is not events[-1] for e in leaky)

    encoder = CapturingEncoder()
    recorder = KafkaRecorder(
        unreachable_broker, encoder, guard=guard, producer_overrides={"log_level": 0}
    )
    await recorder.start()
    try:
        for event in events:
            await recorder.emit(event, vault)
    finally:
        await asyncio.wait_for(recorder.close(timeout_s=0.2), 10)

    seen = encoder.seen
    assert [(e.seq, e.kind) for e in seen] == [(e.seq, e.kind) for e in events]
    for event in seen:
        text = canonical_text(event)
        for real in vault.values():
            assert real not in text, f"seq {event.seq} {event.kind} carries {real!r}"
    thought = next(e for e in seen if isinstance(e, Thought))
    assert thought.reasoning == f"{view['applicant_name']} looks reliable"
    result = next(e for e in seen if isinstance(e, ToolResult))
    assert json.loads(result.result_json or "") == {
        "name": view["applicant_name"],
        "id": view["national_id"],
        "score": 720,
    }

    report = verify_chain(seen)
    assert report.ok, report.describe()
    assert report.events == len(events)
