"""The main promise end to end: a 200-application demo run, then
``flightrec replay verify --all`` reproduces every decided trace, and the
replay results land on the replays topic (never on the CoT or decision topics)."""

from __future__ import annotations

import asyncio
import json

import pytest

from contracts.settings import Settings
from flightrec.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_then_verify_all_reproduces_every_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    from flightrec.demo import run_demo

    report = asyncio.run(run_demo(settings, applications=200, progress=None))
    decided = {d.trace_id for d in report.decisions.values()}
    assert len(decided) + report.dlq == 200
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    code = main(["replay", "verify", "--all", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result["diverged"]
    assert result["diverged"] == [] and result["errors"] == []
    assert result["reproduced"] == len(decided)
    assert result["total"] == len(decided) + len(result["aborted"])

    # One audit, to see the verification recorded on the replays topic.
    trace_id = sorted(decided)[0]
    assert main(["audit", trace_id, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)["traces"][0]
    assert any(r["mode"] == "VERIFY" and r["status"] == "REPRODUCED" for r in doc["replays"])
