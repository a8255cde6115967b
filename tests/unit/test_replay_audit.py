"""The audit report shows input, steps, model configuration, tool inputs and
outputs, decision, chain status, attempts (aborted marked) and replay results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from flightrec.contracts.chain import ChainReport
from flightrec.contracts.events import CotEventBase, ReplayResult
from flightrec.replay.audit import render_audit
from flightrec.replay.history import RunHistory, build_history
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

TRACE = synthetic_trace_id(3)


def _history(broken: bool = False) -> RunHistory:
    events = synthetic_run(TRACE, complete=False) + synthetic_run(TRACE, attempt=2, outcome="REFER")

    def verifier(group: Sequence[CotEventBase]) -> ChainReport:
        if broken and group[0].attempt == 2:
            return ChainReport(ok=False, problem="modified", seq=5, event_id="e5")
        return ChainReport(ok=True)

    return build_history(TRACE, events, chain_verifier=verifier)


def _replay() -> ReplayResult:
    return ReplayResult(
        replay_id="r1",
        replay_of=TRACE,
        mode="REEVALUATE",
        status="CHANGED",
        attempt=2,
        agent="loan-officer",
        agent_version="1.0.0",
        prompt_version="v1",
        model_profile="strict",
        old_outcome="REFER",
        new_outcome="DECLINE",
        first_diff_step=2,
        ts=datetime(2025, 2, 1, tzinfo=UTC),
    )


def test_json_report_holds_every_part() -> None:
    doc = json.loads(render_audit([_history()], [_replay()], fmt="json"))["traces"][0]
    assert doc["trace_id"] == TRACE
    assert doc["input"]["applicant_name"] == "tok:ab"  # PII only as tokens
    assert doc["model_config"]["gen_ai.request.model"] == "policy"
    assert [(a["attempt"], a["status"], a["authoritative"]) for a in doc["attempts"]] == [
        (1, "ABORTED", False),
        (2, "COMPLETE", True),
    ]
    events = doc["attempts"][1]["events"]
    tool_call = next(e for e in events if e["kind"] == "TOOL_CALL")
    tool_result = next(e for e in events if e["kind"] == "TOOL_RESULT")
    assert tool_call["input"] == {"national_id": "tok:cd"}
    assert tool_result["output"] == {"score": 720}
    model_call = next(e for e in events if e["kind"] == "MODEL_CALL")
    assert model_call["model_config"]["gen_ai.request.temperature"] == 0.0
    assert doc["attempts"][1]["decision"]["outcome"] == "REFER"
    assert doc["record_intact"] is True
    assert doc["replays"][0]["new_outcome"] == "DECLINE"


def test_chain_break_is_shown() -> None:
    history = _history(broken=True)
    md = render_audit([history], fmt="md")
    assert "NOT INTACT" in md
    assert "BROKEN - modified at seq 5" in md
    page = render_audit([history], fmt="html")
    assert "BROKEN - modified at seq 5" in page
    assert json.loads(render_audit([history], fmt="json"))["traces"][0]["record_intact"] is False


def test_markdown_marks_aborted_attempts_and_lists_replays() -> None:
    md = render_audit([_history()], [_replay()], fmt="md")
    assert "## Attempt 1 — ABORTED (aborted)" in md
    assert "## Attempt 2 — COMPLETE (authoritative)" in md
    assert "| REEVALUATE | CHANGED | strict |" in md
    assert "**Decision:** REFER" in md


def test_html_is_self_contained_and_escaped() -> None:
    events = synthetic_run(TRACE)
    events[2] = events[2].model_copy(update={"reasoning": "<script>alert(1)</script>"})
    page = render_audit([build_history(TRACE, events, chain_verifier=None)], fmt="html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere


def test_report_and_timeline_spell_the_record_verdict_alike() -> None:
    from flightrec.commands.trace import render_timeline

    for broken, verdict in ((False, "INTACT"), (True, "NOT INTACT")):
        history = _history(broken)
        assert f"**Record integrity:** {verdict}\n" in render_audit([history], fmt="md")
        assert f"record: {verdict}\n" in render_timeline(history)
