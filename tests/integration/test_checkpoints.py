"""Checkpoints on the real broker and registry: the recorder checkpoints the last
confirmed event of each CoT partition it wrote (on close, here, and every
interval); ``flightrec checkpoint export`` writes them out, ``checkpoint verify``
finds each head at its offset in ``agent.cot``, and fails a checkpoint whose
head or offset the log does not hold."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flightrec.cli import main
from flightrec.contracts.chain import event_hash
from flightrec.contracts.codec import Codec
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing_keys import signer_for
from flightrec.recorder.kafka_recorder import KafkaRecorder
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

from recorder_support import read_topic, record_runs

pytestmark = pytest.mark.integration


@pytest.fixture
async def codec(settings: Settings) -> AsyncIterator[Codec]:
    await asyncio.to_thread(apply_contracts, settings)
    codec = Codec(settings, contracts=("cot_event",))
    await codec.start()
    yield codec
    await codec.close()


async def last_events(settings: Settings, codec: Codec) -> dict[str, dict[str, object]]:
    """Per CoT partition, its last record as a checkpoint names it."""
    records = await asyncio.to_thread(read_topic, settings, settings.topics.cot)
    heads: dict[str, dict[str, object]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = await codec.decode_cot(record.value)
        heads[str(record.partition)] = {
            "offset": record.offset,
            "trace_id": event.trace_id,
            "attempt": event.attempt,
            "seq": event.seq,
            "head": event_hash(event),
        }
    return heads


async def cli(monkeypatch: pytest.MonkeyPatch, settings: Settings, *argv: str) -> int:
    """``flightrec *argv`` under ``settings`` (in a thread: it runs its own loop)."""
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    return await asyncio.to_thread(main, list(argv))


async def test_checkpoints_export_and_verify_against_the_log(
    settings: Settings,
    codec: Codec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The worker's own key (the local stack's development key): what verify trusts.
    signer = await asyncio.to_thread(signer_for, settings)
    salt = uuid.uuid4().hex
    runs = [synthetic_run(synthetic_trace_id(i, salt)) for i in range(30)]
    only_on_close = settings.model_copy(update={"checkpoint_interval_s": 3600.0})
    async with KafkaRecorder(only_on_close, codec, signer=signer) as recorder:
        await record_runs(recorder, runs)
    expected = await last_events(settings, codec)
    assert len(expected) > 1  # the runs spread over the partitions

    export = tmp_path / "checkpoints.jsonl"
    assert await cli(monkeypatch, settings, "checkpoint", "export", "--out", str(export)) == 0
    (line,) = [json.loads(text) for text in export.read_text().splitlines()]
    assert (line["topic"], line["partition"]) == (settings.topics.checkpoints, 0)
    assert line["checkpoint"]["heads"] == expected
    assert line["checkpoint"]["key_id"] == signer.key_id

    capsys.readouterr()
    assert await cli(monkeypatch, settings, "checkpoint", "verify", str(export)) == 0
    assert capsys.readouterr().out.startswith("OK ")

    # A head that is not the hash of the event at its offset: not verified.
    partition = sorted(expected)[0]
    tampered = json.loads(json.dumps(line))
    tampered["checkpoint"]["heads"][partition]["head"] = "00" * 32
    # An offset past the end of its partition: the log was cut short.
    short = json.loads(json.dumps(line))
    short["checkpoint"]["heads"][partition]["offset"] += 1000
    forged = tmp_path / "forged.jsonl"
    forged.write_text(json.dumps(line) + "\n" + json.dumps(tampered) + "\n" + json.dumps(short))
    assert await cli(monkeypatch, settings, "checkpoint", "verify", str(forged)) == 1
    ok, changed, cut = capsys.readouterr().out.splitlines()
    assert ok.startswith("OK ")
    assert changed.startswith("FAIL ") and f"is not the checkpointed {'00' * 32}" in changed
    assert cut.startswith("FAIL ") and "the log ends before it" in cut


async def test_checkpoints_are_written_every_interval_and_stay_true_as_the_log_grows(
    settings: Settings,
    codec: Codec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    signer = await asyncio.to_thread(signer_for, settings)
    salt = uuid.uuid4().hex
    export = tmp_path / "checkpoints.jsonl"

    async def exported() -> list[dict[str, Any]]:
        assert await cli(monkeypatch, settings, "checkpoint", "export", "--out", str(export)) == 0
        return [json.loads(text) for text in export.read_text().splitlines()]

    frequent = settings.model_copy(update={"checkpoint_interval_s": 0.2})
    async with KafkaRecorder(frequent, codec, signer=signer) as recorder:
        await record_runs(recorder, [synthetic_run(synthetic_trace_id(0, salt))])
        await asyncio.sleep(0.6)  # an interval after the run was confirmed
        written = await exported()
        assert written and written[-1]["checkpoint"]["heads"] == await last_events(settings, codec)
        await asyncio.sleep(1.0)  # five intervals in which no head moved: nothing new
        assert len(await exported()) == len(written)
        await record_runs(recorder, [synthetic_run(synthetic_trace_id(i, salt)) for i in (1, 2)])
    lines = await exported()
    assert len(lines) > len(written)
    assert lines[-1]["checkpoint"]["heads"] == await last_events(settings, codec)

    # Every checkpoint still holds as the log grows past it.
    capsys.readouterr()
    assert await cli(monkeypatch, settings, "checkpoint", "verify", str(export)) == 0
    verdicts = capsys.readouterr().out.splitlines()
    assert len(verdicts) == len(lines) and all(text.startswith("OK ") for text in verdicts)

    # --since leaves out what was written before it.
    later = tmp_path / "later.jsonl"
    argv = ("checkpoint", "export", "--out", str(later), "--since", "2999-01-01T00:00:00+00:00")
    assert await cli(monkeypatch, settings, *argv) == 0
    assert later.read_text() == ""
