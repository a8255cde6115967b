"""Golden logs (recorded by the real runner, loan agent and PolicyModel) verify as
REPRODUCED offline; a changed agent diverges at the right step; a stricter
profile changes the decisions it should; tampering is reported for that trace only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flightrec.contracts.settings import Settings
from flightrec.replay.audit import render_audit
from flightrec.replay.catalog import RegistryCatalog
from flightrec.replay.history import RunHistory, build_histories
from flightrec.replay.replayer import Candidate, Replayer, summarize_transitions

from golden_io import GOLDEN_DIR, read_golden

GOLDEN = GOLDEN_DIR / "loan_standard.jsonl"


class NoLiveCalls(RegistryCatalog):
    """The loan catalog, but any live model or tool fails the test."""

    def model(self, agent: Any, profile: str) -> Any:
        pytest.fail("verify asked for a live model")

    def live_tools(self, agent: Any) -> Any:
        pytest.fail("verify asked for live tools")


def _histories() -> list[RunHistory]:
    if not GOLDEN.exists():
        pytest.fail(f"golden log missing: run tests/replay/make_golden.py ({GOLDEN.name})")
    return build_histories(read_golden(GOLDEN))


@pytest.mark.parametrize("name", ["loan_standard", "loan_faults"])
async def test_golden_log_reproduces_without_model_or_tools(name: str) -> None:
    path = GOLDEN_DIR / f"{name}.jsonl"
    if not path.exists():
        pytest.fail(f"golden log missing: run tests/replay/make_golden.py ({path.name})")
    histories = build_histories(read_golden(path))
    assert len(histories) >= 10
    if name == "loan_faults":  # the recording holds the failures it is named for
        results = [
            e for h in histories for a in h.attempts for e in a.events if e.kind == "TOOL_RESULT"
        ]
        assert {"ToolHTTPError", "ToolTimeoutError"} <= {r.error_type for r in results}
    # Unroutable bureau: a tool call that escaped replay would fail, not answer.
    replayer = Replayer(NoLiveCalls(Settings(bureau_url="http://127.0.0.1:9")))
    outcomes = [await replayer.verify(h) for h in histories]
    assert [(o.trace_id, o.status) for o in outcomes] == [
        (h.trace_id, "REPRODUCED") for h in histories
    ]


async def test_another_prompt_version_diverges_at_step_0() -> None:
    (history, *_) = _histories()
    tampered_catalog = NoLiveCalls(Settings(bureau_url="http://127.0.0.1:9"))
    original = tampered_catalog.agent

    def other_prompt(name: str, version: str, prompt_version: str, profile: str) -> Any:
        agent = original(name, version, prompt_version, profile)
        return (
            agent.model_copy(update={"prompt_version": prompt_version + "-changed"})
            if hasattr(agent, "model_copy")
            else agent
        )

    tampered_catalog.agent = other_prompt  # type: ignore[method-assign]
    outcome = await Replayer(tampered_catalog).verify(history)
    assert outcome.status == "DIVERGED"
    assert outcome.step == 0
    assert "prompt_version" in (outcome.expected or "") or "model request" in (
        outcome.expected or ""
    )


async def test_strict_profile_changes_decisions_and_transitions_add_up() -> None:
    histories = _histories()
    replayer = Replayer(RegistryCatalog(Settings(bureau_url="http://127.0.0.1:9")))
    outcomes = [await replayer.reevaluate(h, Candidate(model_profile="strict")) for h in histories]
    changed = [o for o in outcomes if o.status == "CHANGED"]
    assert changed, "the strict profile should change at least one golden decision"
    transitions = summarize_transitions(outcomes)
    assert sum(transitions.values()) == len(changed)
    # strict never approves what standard declined
    assert "DECLINE->APPROVE" not in transitions


def _tamper(events: list[Any], how: str) -> str:
    """Tamper with the first trace's TOOL_RESULT in place; the trace id."""
    target = events[0].trace_id
    index = next(
        i for i, e in enumerate(events) if e.trace_id == target and e.kind == "TOOL_RESULT"
    )
    victim = events[index]
    if how == "modified":
        events[index] = victim.model_copy(update={"result_json": '{"score":850}'})
    elif how == "deleted":
        del events[index]
    else:  # inserted: a forged copy with a fresh id, slipped in after the original
        events.insert(index + 1, victim.model_copy(update={"event_id": "f" * 32}))
    return target


@pytest.mark.parametrize("how", ["modified", "deleted", "inserted"])
async def test_tampering_is_reported_for_that_trace_only(how: str) -> None:
    events = read_golden(GOLDEN)
    target = _tamper(events, how)
    histories = build_histories(events)
    assert {h.trace_id for h in histories if not h.intact} == {target}
    replayer = Replayer(NoLiveCalls(Settings(bureau_url="http://127.0.0.1:9")))
    outcomes = {h.trace_id: await replayer.verify(h) for h in histories}
    bad = outcomes.pop(target)
    assert bad.status == "ERROR" and not bad.chain_ok
    assert how in bad.message, bad.message
    assert {o.status for o in outcomes.values()} == {"REPRODUCED"}
    # The audit report says the same, for that trace only.
    report = json.loads(render_audit(histories, fmt="json"))["traces"]
    intact = {doc["trace_id"]: doc["record_intact"] for doc in report}
    assert [t for t, ok in intact.items() if not ok] == [target]
    markdown = render_audit([h for h in histories if h.trace_id == target], fmt="md")
    assert "NOT INTACT" in markdown and how in markdown
