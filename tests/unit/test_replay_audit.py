"""The audit report shows input, steps, model configuration, tool inputs and
outputs, decision, chain status, attempts (aborted marked) and replay results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from flightrec.contracts.chain import ChainReport
from flightrec.contracts.events import CotEventBase, Decision, ReplayResult, RunStarted
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


CLAIM_TRACE = synthetic_trace_id(31)
CLAIM_DOCUMENT = {
    "outcome": "INVESTIGATE",
    "reasons": ["claim filed two days after the policy started"],
    "confidence": 0.7,
    "fraud_score": 0.82,
    "payout": {"amount": 1200.0, "currency": "EUR"},
    "handler_note": "<b>check</b> | the garage",
}


def _claim_history() -> RunHistory:
    events = synthetic_run(
        CLAIM_TRACE,
        business_key="CLM-7",
        key_field="claim_id",
        agent="claims-triage",
        outcome="INVESTIGATE",
        document=CLAIM_DOCUMENT,
    )
    return build_history(CLAIM_TRACE, events, chain_verifier=None)


def test_audit_of_another_agent_shows_its_key_label_and_document() -> None:
    history = _claim_history()
    fields = {"claims-triage": "claim_id"}
    doc = json.loads(render_audit([history], fmt="json", key_fields=fields))["traces"][0]
    assert (doc["business_key"], doc["key_field"], doc["agent"]) == (
        "CLM-7",
        "claim_id",
        "claims-triage",
    )
    assert doc["outcome"] == "INVESTIGATE"
    assert doc["decision_document"] == CLAIM_DOCUMENT
    assert doc["attempts"][0]["decision"]["document"] == CLAIM_DOCUMENT
    assert doc["input"]["claim_id"] == "CLM-7"

    md = render_audit([history], fmt="md", key_fields=fields)
    assert "- **Subject (claim_id):** CLM-7\n" in md
    assert "**Decision of record:** INVESTIGATE" in md
    assert "| fraud_score | 0.82 |" in md
    assert '| payout | {"amount": 1200.0, "currency": "EUR"} |' in md
    assert "| handler_note | <b>check</b> \\| the garage |" in md  # the table stays a table

    page = render_audit([history], fmt="html", key_fields=fields)
    assert "<tr><th>Subject (claim_id)</th><td>CLM-7</td></tr>" in page
    assert "<tr><th>fraud_score</th><td>0.82</td></tr>" in page
    assert "<b>check</b>" not in page and "&lt;b&gt;check&lt;/b&gt;" in page


def test_an_agent_not_installed_here_shows_its_key_as_key() -> None:
    history = _claim_history()
    assert "- **Key:** CLM-7\n" in render_audit([history], fmt="md")
    assert "<tr><th>Key</th><td>CLM-7</td></tr>" in render_audit([history], fmt="html")
    doc = json.loads(render_audit([history], fmt="json"))["traces"][0]
    assert doc["key_field"] is None and doc["business_key"] == "CLM-7"


def test_a_loan_decision_recorded_before_documents_shows_the_document_it_makes_up() -> None:
    events = synthetic_run(TRACE, application_id="app-old", legacy=True, outcome="REFER")
    decision = next(e for e in events if isinstance(e, Decision))
    events[events.index(decision)] = decision.model_copy(update={"conditions": ["co-signer"]})
    history = build_history(TRACE, events, chain_verifier=None)
    fields = {"loan-officer": "application_id"}
    doc = json.loads(render_audit([history], fmt="json", key_fields=fields))["traces"][0]
    assert doc["business_key"] == "app-old"
    assert doc["decision_document"] == {
        "outcome": "REFER",
        "reasons": ["score 720"],
        "conditions": ["co-signer"],
        "confidence": 0.9,
    }
    md = render_audit([history], fmt="md", key_fields=fields)
    assert "- **Subject (application_id):** app-old\n" in md
    assert '| conditions | ["co-signer"] |' in md
    assert "run started for app-old" in md


def test_the_upstream_trace_context_of_the_input_is_shown_with_the_run() -> None:
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    events = [
        e.model_copy(update={"upstream_traceparent": upstream}) if isinstance(e, RunStarted) else e
        for e in synthetic_run(TRACE)
    ]
    history = build_history(TRACE, events, chain_verifier=None)
    doc = json.loads(render_audit([history], fmt="json"))["traces"][0]
    assert (doc["trace_id"], doc["upstream_traceparent"]) == (TRACE, upstream)
    assert f"- **Upstream trace context:** `{upstream}`\n" in render_audit([history], fmt="md")
    assert f"<th>Upstream trace context</th><td>{upstream}</td>" in render_audit(
        [history], fmt="html"
    )
    from flightrec.commands.trace import render_timeline

    assert f"\nupstream trace context: {upstream}\n" in render_timeline(history)
    # A run whose input came without one shows none.
    plain = json.loads(render_audit([_history()], fmt="json"))["traces"][0]
    assert plain["upstream_traceparent"] is None
    assert "Upstream trace context" not in render_audit([_history()], fmt="md")
    assert "upstream" not in render_timeline(_history())
