"""``DemoReport``: the summary text and the JSON shape ``flightrec demo`` prints,
from a hand-made report (no stack, no worker)."""

from __future__ import annotations

import json
from typing import Any

from flightrec.contracts.events import RunCompleted
from flightrec.demo import DemoDecision, DemoReport
from flightrec.testing.samples import sample_cot_events, sample_decision

TRACE_1, TRACE_2, TRACE_3 = "1" * 32, "2" * 32, "3" * 32


def decision(key: str, trace_id: str, outcome: str) -> DemoDecision:
    return DemoDecision(key, trace_id, outcome, sample_decision().decided_at)


def completed(trace_id: str, steps: int, tokens_in: int, tokens_out: int) -> RunCompleted:
    (template,) = [e for e in sample_cot_events() if isinstance(e, RunCompleted)]
    values: dict[str, Any] = template.model_dump()
    values.update(
        trace_id=trace_id,
        steps=steps,
        gen_ai_usage_input_tokens=tokens_in,
        gen_ai_usage_output_tokens=tokens_out,
    )
    return RunCompleted(**values)


def report() -> DemoReport:
    # Inserted out of application-id order: the output must not depend on it.
    decisions = [
        decision("app-3", TRACE_3, "APPROVE"),
        decision("app-1", TRACE_1, "APPROVE"),
        decision("app-2", TRACE_2, "DECLINE"),
    ]
    runs = [completed(TRACE_1, 3, 100, 10), completed(TRACE_2, 5, 200, 20)]
    runs.append(completed(TRACE_3, 4, 300, 30))
    return DemoReport(
        agent="loan-underwriter",
        events=4,
        outcomes=("APPROVE", "DECLINE", "REFER"),
        decisions={d.key: d for d in decisions},
        dlq=1,
        runs={r.trace_id: r for r in runs},
        terminal={TRACE_1, TRACE_2, TRACE_3},
        latencies_ms=[300.0, 100.0, 400.0, 200.0],
        elapsed_s=12.34,
    )


def test_to_json_shape() -> None:
    data = report().to_json()
    assert data == {
        "agent": "loan-underwriter",
        "events": 4,
        "decisions": [
            {"key": "app-1", "trace_id": TRACE_1, "outcome": "APPROVE"},
            {"key": "app-2", "trace_id": TRACE_2, "outcome": "DECLINE"},
            {"key": "app-3", "trace_id": TRACE_3, "outcome": "APPROVE"},
        ],
        "dlq": 1,
    }
    assert json.loads(json.dumps(data)) == data  # what `flightrec demo --json` prints


def test_render_summarises_outcomes_runs_latency_and_example_traces() -> None:
    assert report().render().split("\n") == [
        "flightrec demo: loan-underwriter, 4 events in 12.3 s",
        "",
        "  outcome    count",
        "  APPROVE        2",
        "  DECLINE        1",
        "  REFER          0",
        "  DLQ            1",
        "",
        "  steps per run      min 3  median 4  max 5",
        "  tokens             600 in / 60 out",
        # nearest rank over [100, 200, 300, 400]: p50 is the 2nd, p95 the 4th
        "  time to decision   p50 200 ms  p95 400 ms",
        "",
        "  traces to look at (flightrec trace ID / flightrec audit ID):",
        # the first application of each outcome by id; no REFER happened, so no line
        f"    APPROVE  {TRACE_1}  (app-1)",
        f"    DECLINE  {TRACE_2}  (app-2)",
    ]


def test_render_of_an_empty_report_leaves_out_what_was_not_measured() -> None:
    empty = DemoReport(
        agent="loan-underwriter",
        events=2,
        outcomes=("APPROVE", "DECLINE", "REFER"),
        dlq=2,
        elapsed_s=0.04,
    )
    assert empty.to_json() == {"agent": "loan-underwriter", "events": 2, "decisions": [], "dlq": 2}
    assert empty.render().split("\n") == [
        "flightrec demo: loan-underwriter, 2 events in 0.0 s",
        "",
        "  outcome    count",
        "  APPROVE        0",
        "  DECLINE        0",
        "  REFER          0",
        "  DLQ            2",
        "",
        "  tokens             0 in / 0 out",
        "",
        "  traces to look at (flightrec trace ID / flightrec audit ID):",
    ]
