"""Checkpoints on the real broker and registry: the recorder checkpoints the last
confirmed event of each CoT partition it wrote (on close, here, and every
interval); ``flightrec checkpoint export`` writes them out, ``checkpoint verify``
finds each head at its offset in ``agent.cot``, and fails a checkpoint whose
head or offset the log does not hold."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from flightrec.cli import main
from flightrec.contracts.chain import event_hash
from flightrec.contracts.codec import Codec
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing import RecordSigner
from flightrec.contracts.signing_keys import signer_for
from flightrec.recorder.kafka_recorder import KafkaRecorder
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

from recorder_support import read_topic, record_runs

pytestmark = pytest.mark.integration


class Flightrec:
    """The ``flightrec`` command under a test's settings, its exports in a folder."""

    def __init__(
        self,
        settings: Settings,
        folder: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        for key, value in settings.to_env().items():
            monkeypatch.setenv(key, value)
        self.folder = folder
        self._capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int, list[str]]:
        """Exit code and output lines of ``flightrec *argv`` (in a thread: it runs its own loop)."""
        self._capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        return code, self._capsys.readouterr().out.splitlines()

    async def export(self, name: str, *options: str) -> tuple[Path, list[dict[str, Any]]]:
        """``checkpoint export`` to ``name``: the file and its lines, parsed."""
        path = self.folder / name
        code, _ = await self("checkpoint", "export", "--out", str(path), *options)
        assert code == 0
        return path, [json.loads(text) for text in path.read_text().splitlines()]


@pytest.fixture
def flightrec(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Flightrec:
    return Flightrec(settings, tmp_path, monkeypatch, capsys)


@pytest.fixture
def signer(settings: Settings) -> RecordSigner:
    """The worker's own key (the local stack's development key): what verify trusts."""
    return signer_for(settings)


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


async def test_checkpoints_export_and_verify_against_the_log(
    settings: Settings, codec: Codec, signer: RecordSigner, flightrec: Flightrec
) -> None:
    salt = uuid.uuid4().hex
    runs = [synthetic_run(synthetic_trace_id(i, salt)) for i in range(30)]
    only_on_close = settings.model_copy(update={"checkpoint_interval_s": 3600.0})
    async with KafkaRecorder(only_on_close, codec, signer=signer) as recorder:
        await record_runs(recorder, runs)
    expected = await last_events(settings, codec)
    assert len(expected) > 1  # the runs spread over the partitions

    export, (line,) = await flightrec.export("checkpoints.jsonl")
    assert (line["topic"], line["partition"]) == (settings.topics.checkpoints, 0)
    assert line["checkpoint"]["heads"] == expected
    assert line["checkpoint"]["key_id"] == signer.key_id
    code, (verdict,) = await flightrec("checkpoint", "verify", str(export))
    assert code == 0 and verdict.startswith("OK ")

    # A head that is not the hash of the event at its offset: not verified.
    partition = sorted(expected)[0]
    tampered = json.loads(json.dumps(line))
    tampered["checkpoint"]["heads"][partition]["head"] = "00" * 32
    # An offset past the end of its partition: the log was cut short.
    short = json.loads(json.dumps(line))
    short["checkpoint"]["heads"][partition]["offset"] += 1000
    forged = flightrec.folder / "forged.jsonl"
    forged.write_text("\n".join(json.dumps(x) for x in (line, tampered, short)))
    code, (ok, changed, cut) = await flightrec("checkpoint", "verify", str(forged))
    assert code == 1
    assert ok.startswith("OK ")
    assert changed.startswith("FAIL ") and f"is not the checkpointed {'00' * 32}" in changed
    assert cut.startswith("FAIL ") and "the log ends before it" in cut


async def test_checkpoints_are_written_every_interval_and_stay_true_as_the_log_grows(
    settings: Settings, codec: Codec, signer: RecordSigner, flightrec: Flightrec
) -> None:
    salt = uuid.uuid4().hex
    frequent = settings.model_copy(update={"checkpoint_interval_s": 0.2})
    async with KafkaRecorder(frequent, codec, signer=signer) as recorder:
        await record_runs(recorder, [synthetic_run(synthetic_trace_id(0, salt))])
        await asyncio.sleep(0.6)  # an interval after the run was confirmed
        _, written = await flightrec.export("checkpoints.jsonl")
        assert written and written[-1]["checkpoint"]["heads"] == await last_events(settings, codec)
        await asyncio.sleep(1.0)  # five intervals in which no head moved: nothing new
        assert len((await flightrec.export("checkpoints.jsonl"))[1]) == len(written)
        await record_runs(recorder, [synthetic_run(synthetic_trace_id(i, salt)) for i in (1, 2)])
    export, lines = await flightrec.export("checkpoints.jsonl")
    assert len(lines) > len(written)
    assert lines[-1]["checkpoint"]["heads"] == await last_events(settings, codec)

    # Every checkpoint still holds as the log grows past it.
    code, verdicts = await flightrec("checkpoint", "verify", str(export))
    assert code == 0
    assert len(verdicts) == len(lines) and all(text.startswith("OK ") for text in verdicts)

    # --since leaves out what was written before it.
    _, later = await flightrec.export("later.jsonl", "--since", "2999-01-01T00:00:00+00:00")
    assert later == []
