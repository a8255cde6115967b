"""An event chained on after a run's terminal event: the record says so.

Anyone who can write the CoT topic can append a correctly chained event to a
finished run (the chain then holds). It must read as NOT INTACT with the reason
"appended after end", the run must stay COMPLETE (not turn into an interrupted,
ABORTED one), and ``Replayer.verify`` must report it as an error, which makes
``replay verify`` exit non-zero."""

from __future__ import annotations

from test_default_chain_check import AGENT, _sealed_run

from flightrec.contracts.chain import event_hash, verify_chain, verify_signed_chain
from flightrec.contracts.events import CotEvent, Thought
from flightrec.replay.history import build_history
from flightrec.replay.replayer import Replayer
from flightrec.testing import MemoryRecorder

from replay_support import OneAgentCatalog


def _appended(events: list[CotEvent]) -> list[CotEvent]:
    """One THOUGHT chained on the recorded terminal event, as an insider can."""
    last = events[-1]
    kept = {
        "trace_id",
        "span_id",
        "attempt",
        "step",
        "agent",
        "agent_version",
        "prompt_version",
        "source",
        "ts",
        "business_key",
    }
    extra = Thought(
        **last.model_dump(include=kept),
        event_id="appended",
        seq=last.seq + 1,
        prev_hash=event_hash(last),
        reasoning="changed my mind",
    )
    return [*events, extra]


async def test_an_event_after_the_end_is_named_and_the_run_stays_complete() -> None:
    events = await _sealed_run()
    assert verify_chain(events).ok
    tampered = _appended(events)

    report = verify_chain(tampered)
    assert not report.ok
    assert report.problem == "appended after end"
    assert report.event_id == "appended"
    assert report.seq == events[-1].seq + 1

    recorder = MemoryRecorder()  # a keyring that is not the run's: checked after the chain
    history = build_history(
        events[0].trace_id, tampered, chain_verifier=verify_signed_chain(recorder.keyring)
    )
    attempt = history.attempts[0]
    assert attempt.status == "COMPLETE" and not attempt.intact
    assert "appended after end" in "; ".join(attempt.problems())

    outcome = await Replayer(OneAgentCatalog(AGENT)).verify(history)
    assert outcome.status == "ERROR"
    assert "appended after end" in outcome.message
