"""RunHistory: attempts separated, complete vs aborted, the authoritative attempt,
seq gaps and chain verdicts reported (never hidden)."""

from __future__ import annotations

from collections.abc import Sequence

from flightrec.contracts.chain import ChainReport
from flightrec.contracts.events import CotEventBase
from flightrec.replay.history import build_histories, build_history
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

TRACE = synthetic_trace_id(1)


def test_complete_attempt_is_authoritative_and_intact() -> None:
    history = build_history(TRACE, synthetic_run(TRACE, outcome="REFER"), chain_verifier=None)
    assert len(history.attempts) == 1
    attempt = history.attempts[0]
    assert attempt.status == "COMPLETE"
    assert history.authoritative is attempt
    assert history.outcome == "REFER"
    assert history.application_id == "app-1"
    assert history.intact
    assert history.problems() == []


def test_aborted_then_complete_attempt() -> None:
    events = synthetic_run(TRACE, complete=False) + synthetic_run(
        TRACE, attempt=2, outcome="DECLINE"
    )
    history = build_history(TRACE, events, chain_verifier=None)
    assert [(a.number, a.status) for a in history.attempts] == [(1, "ABORTED"), (2, "COMPLETE")]
    assert history.authoritative is not None and history.authoritative.number == 2
    assert history.outcome == "DECLINE"


def test_later_aborted_attempt_does_not_replace_the_complete_one() -> None:
    events = synthetic_run(TRACE, outcome="APPROVE") + synthetic_run(
        TRACE, attempt=2, complete=False
    )
    history = build_history(TRACE, events, chain_verifier=None)
    assert history.authoritative is not None and history.authoritative.number == 1
    assert history.latest.number == 2 and history.latest.status == "ABORTED"


def test_only_aborted_attempt() -> None:
    history = build_history(TRACE, synthetic_run(TRACE, complete=False), chain_verifier=None)
    assert history.authoritative is None
    assert history.outcome is None


def test_deleted_event_is_a_missing_seq() -> None:
    events = synthetic_run(TRACE)
    del events[3]
    attempt = build_history(TRACE, events, chain_verifier=None).attempts[0]
    assert [(p.kind, p.seq) for p in attempt.seq_problems] == [("missing", 3)]
    assert not attempt.intact
    assert "missing seq 3" in attempt.problems()[0]


def test_inserted_event_is_a_repeated_seq() -> None:
    events = synthetic_run(TRACE)
    forged = events[2].model_copy(update={"event_id": "forged", "reasoning": "approve anyway"})
    events.insert(3, forged)
    attempt = build_history(TRACE, events, chain_verifier=None).attempts[0]
    assert [(p.kind, p.seq) for p in attempt.seq_problems] == [("repeated", 2)]


def test_exact_redelivery_is_dropped_and_counted() -> None:
    events = synthetic_run(TRACE)
    events.insert(4, events[3])
    attempt = build_history(TRACE, events, chain_verifier=None).attempts[0]
    assert attempt.duplicates == 1
    assert attempt.seq_problems == ()
    assert len(attempt.events) == len(synthetic_run(TRACE))


def test_chain_verdict_is_reported_per_attempt() -> None:
    def verifier(events: Sequence[CotEventBase]) -> ChainReport:
        if events[0].attempt == 2:
            return ChainReport(ok=False, problem="modified", seq=4, event_id="x")
        return ChainReport(ok=True)

    events = synthetic_run(TRACE, complete=False) + synthetic_run(TRACE, attempt=2)
    history = build_history(TRACE, events, chain_verifier=verifier)
    assert history.attempts[0].intact
    assert not history.attempts[1].intact
    assert history.problems() == ["attempt 2: hash chain BROKEN - modified at seq 4 (event x)"]


def test_histories_group_by_trace_in_first_seen_order() -> None:
    other = synthetic_trace_id(2)
    a, b = synthetic_run(TRACE), synthetic_run(other, application_id="app-2")
    interleaved = [e for pair in zip(a, b, strict=True) for e in pair]
    histories = build_histories(interleaved, chain_verifier=None)
    assert [h.trace_id for h in histories] == [TRACE, other]
    assert [h.application_id for h in histories] == ["app-1", "app-2"]
    assert all(h.intact for h in histories)


def test_business_key_of_current_and_legacy_runs() -> None:
    current = build_history(TRACE, synthetic_run(TRACE, business_key="CLM-3"), chain_verifier=None)
    assert current.run_started is not None and current.run_started.application_id is None
    assert current.business_key == current.application_id == "CLM-3"
    legacy = build_history(
        TRACE, synthetic_run(TRACE, application_id="app-9", legacy=True), chain_verifier=None
    )
    assert legacy.business_key == "app-9"
    # RUN_STARTED lost: a current run names its key on every event, a legacy one on DECISION.
    for events, key in (
        (synthetic_run(TRACE, business_key="CLM-3"), "CLM-3"),
        (synthetic_run(TRACE, application_id="app-9", legacy=True), "app-9"),
    ):
        history = build_history(TRACE, events[1:], chain_verifier=None)
        assert history.run_started is None and history.business_key == key
    assert (
        build_history(TRACE, synthetic_run(TRACE, legacy=True, complete=False)[1:]).business_key
        is None
    )
