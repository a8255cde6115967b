"""The main promise end to end: a 200-application demo run, then
``flightrec replay verify --all`` reproduces all 200, re-evaluation under a
stricter profile and another prompt version reports transitions that add up,
and replay results land on the replays topic (never on the CoT or decision
topics)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from flightrec.cli import main
from flightrec.contracts.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer(settings.consumer_config(group_id="watermarks"))
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.topics[topic].partitions
        }
    finally:
        consumer.close()


def test_demo_then_verify_all_reproduces_every_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    from flightrec.demo import run_demo

    report = asyncio.run(run_demo(settings, events=200, progress=None))
    decided = {d.trace_id for d in report.decisions.values()}
    assert report.dlq == 0 and len(decided) == 200
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = main(["replay", "verify", "--all", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result["diverged"]
    assert result["diverged"] == [] and result["errors"] == []
    assert result["reproduced"] == 200
    assert result["total"] == 200 + len(result["aborted"])

    # One audit, to see the verification recorded on the replays topic.
    trace_id = sorted(decided)[0]
    assert main(["audit", trace_id, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)["traces"][0]
    assert any(r["mode"] == "VERIFY" and r["status"] == "REPRODUCED" for r in doc["replays"])

    def reevaluate(*options: str) -> tuple[int, dict[str, Any]]:
        code = main(["replay", "reevaluate", "--all", *options, "--json"])
        return code, json.loads(capsys.readouterr().out)

    # Re-evaluation writes to the replays topic only.
    written = {
        t: _end_offsets(settings, t) for t in (settings.topics.cot, settings.topics.decisions)
    }
    replays_before = sum(_end_offsets(settings, settings.topics.replays).values())
    code, strict = reevaluate("--model-profile", "strict")
    assert code == 0
    assert strict["total"] >= 200 and strict["errors"] == []
    assert strict["changed"] > 0, "the strict profile should change some decisions"
    assert sum(strict["transitions"].values()) == strict["changed"]
    changed = [t for t in strict["traces"] if t["old"] != t["new"]]
    assert len(changed) == strict["changed"]
    assert "DECLINE->APPROVE" not in strict["transitions"]  # stricter never approves a decline

    code, v2 = reevaluate("--model-profile", "standard", "--prompt-version", "v2")
    assert code == 0
    assert v2["total"] == strict["total"] and v2["errors"] == []
    assert all(t["first_diff_step"] == 0 for t in v2["traces"] if t["status"] != "ABORTED")

    # A prompt version this code does not have: every trace says so, none crashes the batch.
    code, missing = reevaluate("--model-profile", "standard", "--prompt-version", "v9")
    assert code == 1
    assert len(missing["errors"]) == 200
    assert all("prompt version" in e["message"] for e in missing["errors"])

    for topic, ends in written.items():
        assert _end_offsets(settings, topic) == ends, f"replay wrote to {topic}"
    assert sum(_end_offsets(settings, settings.topics.replays).values()) > replays_before
