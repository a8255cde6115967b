"""Hash chain: sealing links every event to the one before; verification names the
first modified, deleted or inserted event of a tampered copy of a trace."""

from __future__ import annotations

import itertools

from flightrec.contracts.chain import ChainSealer, canonical_bytes, event_hash, verify_chain
from flightrec.contracts.events import GENESIS_HASH, CotEvent, Thought, ToolResult
from flightrec.testing.runs import synthetic_run, synthetic_trace_id


def sealed_trace(index: int = 1, attempt: int = 1) -> list[CotEvent]:
    sealer = ChainSealer()
    return [sealer.seal(e) for e in synthetic_run(synthetic_trace_id(index), attempt=attempt)]


def test_sealing_links_each_event_to_the_previous_one() -> None:
    events = sealed_trace()
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == event_hash(before)
    report = verify_chain(events)
    assert report.ok and report.events == len(events)
    assert report.head == event_hash(events[-1])


def test_sealer_keeps_one_chain_per_trace_and_attempt() -> None:
    sealer = ChainSealer()
    a1 = synthetic_run(synthetic_trace_id(1))
    a2 = synthetic_run(synthetic_trace_id(1), attempt=2)
    b = synthetic_run(synthetic_trace_id(2))
    interleaved = [sealer.seal(e) for trio in zip(a1, a2, b, strict=False) for e in trio]
    starts = [e for e in interleaved if e.seq == 0]
    assert [e.prev_hash for e in starts] == [GENESIS_HASH] * 3
    assert verify_chain(interleaved).ok
    sealer.forget(a1[0].trace_id, 1)
    assert sealer.head(a1[0].trace_id, 1) is None
    assert sealer.head(a1[0].trace_id, 2) is not None


def test_canonical_bytes_include_prev_hash_and_are_stable() -> None:
    event = sealed_trace()[3]
    assert canonical_bytes(event) == canonical_bytes(event.model_copy())
    assert event.prev_hash.encode() in canonical_bytes(event)
    relinked = event.model_copy(update={"prev_hash": "f" * 64})
    assert event_hash(relinked) != event_hash(event)


def test_modified_event_is_named() -> None:
    events = sealed_trace()
    index = next(i for i, e in enumerate(events) if isinstance(e, ToolResult))
    target = events[index]
    assert isinstance(target, ToolResult)
    events[index] = target.model_copy(update={"result_json": '{"score":850}'})
    report = verify_chain(events)
    assert not report.ok
    assert (report.problem, report.seq, report.event_id) == (
        "modified",
        target.seq,
        target.event_id,
    )


def test_modified_prev_hash_is_named() -> None:
    events = sealed_trace()
    events[4] = events[4].model_copy(update={"prev_hash": "a" * 64})
    report = verify_chain(events)
    assert (report.ok, report.problem, report.seq) == (False, "modified", 4)


def test_deleted_event_is_named() -> None:
    events = sealed_trace()
    removed = events.pop(3)
    report = verify_chain(events)
    assert not report.ok
    assert report.problem == "deleted"
    assert report.seq == removed.seq
    assert report.event_id == events[3].event_id  # the event after the hole


def test_deleted_first_event_is_named() -> None:
    events = sealed_trace()[1:]
    report = verify_chain(events)
    assert (report.ok, report.problem, report.seq) == (False, "deleted", 0)


def test_inserted_event_with_repeated_seq_is_named() -> None:
    events = sealed_trace()
    forged = Thought(
        **events[2].model_dump(exclude={"kind", "reasoning", "event_id"}),
        event_id="forged-1",
        reasoning="the applicant is trustworthy",
    )
    events.insert(3, forged)
    report = verify_chain(events)
    assert (report.ok, report.problem, report.event_id) == (False, "inserted", "forged-1")


def test_inserted_event_with_forged_link_and_shifted_seq_is_named() -> None:
    events = sealed_trace()
    # A careful forger links the new event to its predecessor and renumbers the rest.
    forged = Thought(
        **events[2].model_dump(exclude={"kind", "reasoning", "event_id", "seq", "prev_hash"}),
        event_id="forged-2",
        seq=3,
        prev_hash=event_hash(events[2]),
        reasoning="skip the bureau",
    )
    shifted = [e.model_copy(update={"seq": e.seq + 1}) for e in events[3:]]
    tampered = [*events[:3], forged, *shifted]
    report = verify_chain(tampered)
    assert (report.ok, report.problem, report.event_id, report.seq) == (
        False,
        "inserted",
        "forged-2",
        3,
    )


def test_appended_event_after_completion_is_inserted() -> None:
    events = sealed_trace()
    extra = events[-2].model_copy(update={"event_id": "late", "seq": events[-1].seq + 1})
    report = verify_chain([*events, extra])
    assert (report.ok, report.problem, report.event_id) == (False, "inserted", "late")


def test_first_problem_across_attempts_is_reported() -> None:
    good = sealed_trace(1)
    bad = sealed_trace(2)
    del bad[5]
    report = verify_chain([*good, *bad])
    assert (report.ok, report.problem, report.trace_id) == (False, "deleted", bad[0].trace_id)
