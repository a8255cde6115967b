"""``flightrec trace|traces|replay|audit`` end to end against the real broker and registry."""

from __future__ import annotations

import asyncio
import json

import pytest

from flightrec.cli import main
from flightrec.contracts.codec import Codec
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.settings import Settings
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

pytestmark = pytest.mark.integration

# Helpers shared with the reader tests (same directory on sys.path under pytest).
from test_replay_reader import create_cot_topic, produce  # noqa: E402


def _env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)


async def _seed(settings: Settings) -> list[str]:
    await asyncio.to_thread(apply_contracts, settings)
    codec = Codec(settings)
    await codec.start()
    try:
        create_cot_topic(settings)
        ids = [synthetic_trace_id(i, settings.topics.prefix) for i in range(3)]
        events = [
            e
            for i, t in enumerate(ids)
            for e in synthetic_run(
                t, application_id=f"cli-{i}", outcome=("APPROVE", "REFER", "DECLINE")[i]
            )
        ]
        await produce(settings, codec, events)
        return ids
    finally:
        await codec.close()


def check_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    ids: list[str],
) -> None:
    _env(monkeypatch, settings)
    unknown = "f" * 32
    assert main(["trace", unknown]) == 2
    err = capsys.readouterr().err
    assert "no such trace" in err and unknown in err

    assert main(["replay", "verify", "not-a-trace-id"]) == 2
    assert "not a trace id" in capsys.readouterr().err

    assert main(["audit", "--application", "nobody"]) == 2
    assert "no trace for this application" in capsys.readouterr().err

    assert main(["traces", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    # The listing is in order of the records' broker timestamps, which the
    # concurrent producer does not fix between traces: compare as a set.
    pairs = [(t["trace_id"], t["outcome"]) for t in listed]
    assert len(pairs) == 3
    assert set(pairs) == set(zip(ids, ["APPROVE", "REFER", "DECLINE"], strict=True))
    assert main(["traces", "--outcome", "refer"]) == 0
    out = capsys.readouterr().out
    assert ids[1] in out and ids[0] not in out and "1 traces" in out

    # A known trace: its timeline, as text and as JSON, in seq order.
    assert main(["trace", ids[2]]) == 0
    out = capsys.readouterr().out
    assert ids[2] in out and "RUN_STARTED" in out and "DECISION" in out and "DECLINE" in out
    assert main(["trace", ids[2], "--json"]) == 0
    timeline = json.loads(capsys.readouterr().out)
    assert timeline["trace_id"] == ids[2]
    events = [e for a in timeline["attempts"] for e in a["events"]]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["kind"] == "RUN_STARTED" and events[-1]["kind"] == "RUN_COMPLETED"

    # A well-formed id nobody recorded.
    assert main(["replay", "verify", unknown]) == 2
    assert unknown in capsys.readouterr().err


def test_cli_unknown_ids_and_trace_list(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    # Sync test: the CLI runs its own event loop.
    ids = asyncio.run(_seed(settings))
    check_cli(monkeypatch, capsys, settings, ids)
