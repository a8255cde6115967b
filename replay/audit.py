"""Audit report of one or more traces: what the agent saw, thought, called, got back
and decided, whether the record is intact, and what replays found.

Domain-neutral: the subject is shown by its business key under the agent's key
field name (``Subject (claim_id)``; ``Key`` when the agent is not installed here),
the decision by the agent's own outcome label and its whole decision document.

Built from :class:`~flightrec.replay.history.RunHistory` objects (and the trace's
``ReplayResult`` records) into one plain document (:func:`audit_document`),
rendered as JSON, Markdown or a self-contained HTML page (no external CSS,
scripts or fonts) that a compliance officer can open without other tools.
Personal data appears only as the tokens the log holds.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from flightrec.contracts.chain import Integrity
from flightrec.contracts.events import (
    CotEvent,
    Decision,
    ModelCall,
    ReplayResult,
    RunCompleted,
    RunFailed,
    RunStarted,
    Thought,
    ToolCall,
    ToolResult,
    business_key_of,
    current_form,
)
from flightrec.replay.history import Attempt, RunHistory

__all__ = ["AuditFormat", "audit_document", "decision_document", "event_summary", "render_audit"]

AuditFormat = Literal["md", "html", "json"]


def _pretty(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def event_summary(event: CotEvent) -> str:
    """One readable line describing an event (used by the timeline and the report)."""
    if isinstance(event, RunStarted):
        return (
            f"run started for {business_key_of(event)} "
            f"(model {event.gen_ai_provider_name}/{event.gen_ai_request_model}, "
            f"profile {event.model_profile}, tools {', '.join(event.tools)})"
        )
    if isinstance(event, ModelCall):
        status = (
            "ok" if event.status == "ok" else f"error {event.error_type}: {event.error_message}"
        )
        return (
            f"model call #{event.call_attempt} {event.gen_ai_request_model} {status}, "
            f"{event.gen_ai_usage_input_tokens} in / {event.gen_ai_usage_output_tokens} out tokens, "
            f"{event.latency_ms:.0f} ms"
        )
    if isinstance(event, Thought):
        return f"thought: {event.reasoning}"
    if isinstance(event, ToolCall):
        return f"tool call {event.tool}({event.arguments_json})"
    if isinstance(event, ToolResult):
        if event.status == "ok":
            return f"tool result {event.tool}: {event.result_json}"
        return f"tool error {event.tool}: {event.error_type}: {event.error_message}"
    if isinstance(event, Decision):
        return (
            f"decision {event.outcome} (confidence {event.confidence:.2f}): "
            f"{'; '.join(event.reasons)}"
        )
    if isinstance(event, RunFailed):
        return f"run failed: {event.error_type}: {event.reason}"
    if isinstance(event, RunCompleted):
        return f"run completed: {event.outcome} after {event.steps} steps"
    return event.kind  # pragma: no cover - every kind is handled above


def _event_doc(event: CotEvent) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "seq": event.seq,
        "step": event.step,
        "kind": event.kind,
        "ts": event.ts.isoformat(),
        "summary": event_summary(event),
    }
    if isinstance(event, ModelCall):
        doc["model_config"] = {
            "gen_ai.provider.name": event.gen_ai_provider_name,
            "gen_ai.request.model": event.gen_ai_request_model,
            "gen_ai.response.model": event.gen_ai_response_model,
            "gen_ai.request.temperature": event.gen_ai_request_temperature,
            "gen_ai.request.seed": event.gen_ai_request_seed,
            "gen_ai.usage.input_tokens": event.gen_ai_usage_input_tokens,
            "gen_ai.usage.output_tokens": event.gen_ai_usage_output_tokens,
            "request_hash": event.request_hash,
        }
        doc["output"] = _pretty(event.output_json)
    elif isinstance(event, ToolCall):
        doc["tool"] = event.tool
        doc["input"] = _pretty(event.arguments_json)
        doc["reasoning"] = event.reasoning
    elif isinstance(event, ToolResult):
        doc["tool"] = event.tool
        doc["status"] = event.status
        doc["output"] = _pretty(event.result_json)
        if event.status != "ok":
            doc["error"] = f"{event.error_type}: {event.error_message}"
    elif isinstance(event, Decision):
        doc["outcome"] = event.outcome
        doc["reasons"] = list(event.reasons)
        doc["conditions"] = list(event.conditions)
        doc["confidence"] = event.confidence
    return doc


def decision_document(decision: Decision, business_key: str | None = None) -> Any:
    """The agent's decision document of ``decision``, parsed: its ``document_json``,
    or for a decision recorded before the document existed, the one its loan
    fields make up (:func:`~flightrec.contracts.events.current_form`)."""
    current = current_form(decision, business_key)
    document_json = current.document_json if isinstance(current, Decision) else None
    return _pretty(document_json)


def _attempt_doc(attempt: Attempt, authoritative: bool, key: str | None) -> dict[str, Any]:
    decision = attempt.decision
    return {
        "attempt": attempt.number,
        "status": attempt.status,
        "authoritative": authoritative,
        "chain": attempt.chain.describe(),
        "chain_ok": attempt.chain.ok,
        "problems": attempt.problems(),
        "decision": None
        if decision is None
        else {
            "outcome": decision.outcome,
            "reasons": list(decision.reasons),
            "conditions": list(decision.conditions),
            "confidence": decision.confidence,
            "document": decision_document(decision, key),
        },
        "failure": None
        if attempt.failure is None
        else f"{attempt.failure.error_type}: {attempt.failure.reason}",
        "events": [_event_doc(e) for e in attempt.events],
    }


def _replay_doc(result: ReplayResult) -> dict[str, Any]:
    return {
        "replay_id": result.replay_id,
        "mode": result.mode,
        "status": result.status,
        "ts": result.ts.isoformat(),
        "attempt": result.attempt,
        "agent_version": result.agent_version,
        "prompt_version": result.prompt_version,
        "model_profile": result.model_profile,
        "old_outcome": result.old_outcome,
        "new_outcome": result.new_outcome,
        "first_diff_step": result.first_diff_step,
        "expected": result.expected,
        "actual": result.actual,
        "message": result.message,
    }


def audit_document(
    history: RunHistory, replays: Sequence[ReplayResult] = (), *, key_field: str | None = None
) -> dict[str, Any]:
    """The audit facts of one trace as plain data (the JSON format is exactly this).

    ``key_field`` names the agent's business key field (``claim_id``), when the
    agent is known; ``decision_document`` is the decision of record's document."""
    started = history.run_started
    chosen = history.authoritative
    first = history.first_event
    key = history.business_key
    decision = chosen.decision if chosen is not None else None
    doc: dict[str, Any] = {
        "trace_id": history.trace_id,
        "business_key": key,
        "key_field": key_field,
        "agent": first.agent,
        "agent_version": first.agent_version,
        "prompt_version": first.prompt_version,
        "source": first.source.model_dump(),
        # The trace context the input arrived with: another system's trace,
        # linked from this run's spans (the run's own trace is ``trace_id``).
        "upstream_traceparent": started.upstream_traceparent if started is not None else None,
        "record_intact": history.intact,
        "problems": history.problems(),
        "authoritative_attempt": chosen.number if chosen is not None else None,
        "outcome": history.outcome,
        "decision_document": None if decision is None else decision_document(decision, key),
        "input": _pretty(started.input_json) if started is not None else None,
        "model_config": None
        if started is None
        else {
            "profile": started.model_profile,
            "gen_ai.provider.name": started.gen_ai_provider_name,
            "gen_ai.request.model": started.gen_ai_request_model,
            "tools": list(started.tools),
            "max_steps": started.max_steps,
            "max_tokens": started.max_tokens,
            "deadline_s": started.deadline_s,
            "run_config": _pretty(started.run_config_json),
        },
        "attempts": [_attempt_doc(a, a is chosen, key) for a in history.attempts],
        "replays": [_replay_doc(r) for r in replays if r.replay_of == history.trace_id],
    }
    return doc


# ------------------------------------------------------------------ rendering

_REPLAY_COLUMNS = (
    "time",
    "mode",
    "status",
    "model profile",
    "prompt",
    "old",
    "new",
    "step",
    "detail",
)


def _replay_cells(r: dict[str, Any]) -> list[str]:
    """One replay as the cells of the replays table (both formats), detail last."""
    detail = r["message"] or ""
    if r["expected"] or r["actual"]:
        detail += f" expected: {r['expected']}; actual: {r['actual']}"
    step = r["first_diff_step"]
    return [
        r["ts"],
        r["mode"],
        r["status"],
        r["model_profile"],
        r["prompt_version"],
        r["old_outcome"] or "",
        r["new_outcome"] or "",
        "" if step is None else str(step),
        detail,
    ]


def _key_label(doc: dict[str, Any]) -> str:
    return f"Subject ({doc['key_field']})" if doc["key_field"] else "Key"


def _document_rows(document: Any) -> list[tuple[str, Any]]:
    """The decision document as (field, value) rows; a value that is not an
    object (never written by flightrec) is one row."""
    if isinstance(document, dict):
        return list(document.items())
    return [("document", document)]


def _attempt_label(attempt: dict[str, Any]) -> str:
    return "authoritative" if attempt["authoritative"] else str(attempt["status"]).lower()


def _md_cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(doc: dict[str, Any]) -> str:
    upstream = doc["upstream_traceparent"]
    out = [f"# Audit report — trace `{doc['trace_id']}`", ""]
    out += [
        f"- **{_key_label(doc)}:** {doc['business_key'] or '—'}",
        f"- **Agent:** {doc['agent']} {doc['agent_version']} (prompt {doc['prompt_version']})",
        f"- **Source:** {doc['source']['topic']} partition {doc['source']['partition']} "
        f"offset {doc['source']['offset']}",
        *([f"- **Upstream trace context:** `{upstream}`"] if upstream else []),
        f"- **Decision of record:** {doc['outcome'] or 'none'} "
        f"(attempt {doc['authoritative_attempt'] or '—'})",
        f"- **Record integrity:** {Integrity.of(doc['record_intact'])}",
        "",
    ]
    if doc["problems"]:
        out += ["## Integrity problems", ""] + [f"- {p}" for p in doc["problems"]] + [""]
    out += ["## Input (personal data shown as tokens)", "", "```json"]
    out += [json.dumps(doc["input"], indent=2, ensure_ascii=False, sort_keys=True), "```", ""]
    if doc["model_config"] is not None:
        out += ["## Model configuration", "", "| setting | value |", "|---|---|"]
        out += [f"| {k} | {_md_cell(v)} |" for k, v in doc["model_config"].items()]
        out.append("")
    for attempt in doc["attempts"]:
        out += [
            f"## Attempt {attempt['attempt']} — {attempt['status']} ({_attempt_label(attempt)})",
            "",
            f"Hash chain: {attempt['chain']}",
            "",
        ]
        out += [f"- problem: {p}" for p in attempt["problems"]]
        out += ["| seq | step | kind | time | details |", "|---|---|---|---|---|"]
        for event in attempt["events"]:
            details = event["summary"]
            if "model_config" in event:
                details += " — config " + json.dumps(event["model_config"], ensure_ascii=False)
            out.append(
                f"| {event['seq']} | {event['step']} | {event['kind']} | {event['ts']} | "
                f"{_md_cell(details)} |"
            )
        out.append("")
        if attempt["decision"] is not None:
            d = attempt["decision"]
            out += [
                f"**Decision:** {d['outcome']} (confidence {d['confidence']:.2f})",
                "",
                *[f"- reason: {r}" for r in d["reasons"]],
                *[f"- condition: {c}" for c in d["conditions"]],
                "",
            ]
            if d["document"] is not None:
                out += ["Decision document:", "", "| field | value |", "|---|---|"]
                out += [
                    f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in _document_rows(d["document"])
                ]
                out.append("")
        if attempt["failure"]:
            out += [f"**Failure:** {attempt['failure']}", ""]
    out += ["## Replays", ""]
    if not doc["replays"]:
        out += ["No replay or re-evaluation has been recorded for this trace.", ""]
    else:
        out += ["| " + " | ".join(_REPLAY_COLUMNS) + " |", "|" + "---|" * len(_REPLAY_COLUMNS)]
        for r in doc["replays"]:
            *cells, detail = _replay_cells(r)
            out.append("| " + " | ".join([*cells, _md_cell(detail)]) + " |")
        out.append("")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left;font-size:.9em}
th{background:#f2f2f2}pre{background:#f7f7f7;padding:.8em;overflow-x:auto}
.ok{color:#176117;font-weight:bold}.bad{color:#a40000;font-weight:bold}
.aborted{color:#8a5a00}.kind{font-family:monospace}
"""


def _h(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return html.escape(text)


def _html(docs: Sequence[dict[str, Any]]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>flightrec audit report</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for doc in docs:
        intact = doc["record_intact"]
        upstream = doc["upstream_traceparent"]
        parts += [
            f"<h1>Audit report — trace <code>{_h(doc['trace_id'])}</code></h1>",
            "<table>",
            f"<tr><th>{_h(_key_label(doc))}</th><td>{_h(doc['business_key'] or '')}</td></tr>",
            f"<tr><th>Agent</th><td>{_h(doc['agent'])} {_h(doc['agent_version'])} "
            f"(prompt {_h(doc['prompt_version'])})</td></tr>",
            f"<tr><th>Source</th><td>{_h(doc['source'])}</td></tr>",
            *(
                [f"<tr><th>Upstream trace context</th><td>{_h(upstream)}</td></tr>"]
                if upstream
                else []
            ),
            f"<tr><th>Decision of record</th><td>{_h(doc['outcome'] or 'none')} "
            f"(attempt {_h(doc['authoritative_attempt'] or '—')})</td></tr>",
            f'<tr><th>Record integrity</th><td class="{"ok" if intact else "bad"}">'
            f"{Integrity.of(intact)}</td></tr>",
            "</table>",
        ]
        if doc["problems"]:
            parts.append("<h2>Integrity problems</h2><ul>")
            parts += [f'<li class="bad">{_h(p)}</li>' for p in doc["problems"]]
            parts.append("</ul>")
        parts += [
            "<h2>Input (personal data shown as tokens)</h2>",
            f"<pre>{_h(json.dumps(doc['input'], indent=2, ensure_ascii=False, sort_keys=True))}"
            "</pre>",
        ]
        if doc["model_config"] is not None:
            parts.append("<h2>Model configuration</h2><table>")
            parts += [
                f"<tr><th>{_h(k)}</th><td>{_h(v)}</td></tr>" for k, v in doc["model_config"].items()
            ]
            parts.append("</table>")
        for attempt in doc["attempts"]:
            cls = "ok" if attempt["authoritative"] else "aborted"
            chain_cls = "ok" if attempt["chain_ok"] else "bad"
            parts += [
                f'<h2 class="{cls}">Attempt {attempt["attempt"]} — {_h(attempt["status"])} '
                f"({_h(_attempt_label(attempt))})</h2>",
                f'<p>Hash chain: <span class="{chain_cls}">{_h(attempt["chain"])}</span></p>',
            ]
            if attempt["problems"]:
                parts.append("<ul>")
                parts += [f'<li class="bad">{_h(p)}</li>' for p in attempt["problems"]]
                parts.append("</ul>")
            parts.append(
                "<table><tr><th>seq</th><th>step</th><th>kind</th><th>time</th>"
                "<th>details</th></tr>"
            )
            for event in attempt["events"]:
                extra = ""
                if "model_config" in event:
                    extra = f"<br><small>{_h(event['model_config'])}</small>"
                parts.append(
                    f"<tr><td>{event['seq']}</td><td>{event['step']}</td>"
                    f'<td class="kind">{_h(event["kind"])}</td><td>{_h(event["ts"])}</td>'
                    f"<td>{_h(event['summary'])}{extra}</td></tr>"
                )
            parts.append("</table>")
            if attempt["decision"] is not None:
                d = attempt["decision"]
                parts.append(
                    f"<p><b>Decision:</b> {_h(d['outcome'])} (confidence {d['confidence']:.2f})</p>"
                    "<ul>"
                    + "".join(f"<li>reason: {_h(r)}</li>" for r in d["reasons"])
                    + "".join(f"<li>condition: {_h(c)}</li>" for c in d["conditions"])
                    + "</ul>"
                )
                if d["document"] is not None:
                    parts.append(
                        "<table><tr><th>field</th><th>value</th></tr>"
                        + "".join(
                            f"<tr><th>{_h(k)}</th><td>{_h(v)}</td></tr>"
                            for k, v in _document_rows(d["document"])
                        )
                        + "</table>"
                    )
            if attempt["failure"]:
                parts.append(f'<p class="bad">Failure: {_h(attempt["failure"])}</p>')
        parts.append("<h2>Replays</h2>")
        if not doc["replays"]:
            parts.append("<p>No replay or re-evaluation has been recorded for this trace.</p>")
        else:
            header = "".join(f"<th>{c}</th>" for c in _REPLAY_COLUMNS)
            parts.append(f"<table><tr>{header}</tr>")
            for r in doc["replays"]:
                parts.append(
                    "<tr>" + "".join(f"<td>{_h(c)}</td>" for c in _replay_cells(r)) + "</tr>"
                )
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_audit(
    histories: Sequence[RunHistory],
    replays: Sequence[ReplayResult] = (),
    *,
    fmt: AuditFormat = "md",
    key_fields: Mapping[str, str] | None = None,
) -> str:
    """The audit report of ``histories`` in ``fmt`` (``md``, ``html`` or ``json``).

    ``key_fields`` maps agent names to their business key field (from the agent
    registry); a trace of an agent it does not name shows its key as ``Key``."""
    fields = key_fields or {}
    docs = [
        audit_document(h, replays, key_field=fields.get(h.first_event.agent)) for h in histories
    ]
    if fmt == "json":
        return json.dumps({"traces": docs}, indent=2, ensure_ascii=False)
    if fmt == "html":
        return _html(docs)
    return "\n\n".join(_markdown(d) for d in docs)
