"""The scale-out test: several workers share one consumer group while members
die, join and leave mid-run, and the guarantees of docs/design.md still hold on
what the broker kept.

Three worker processes (dynamic membership) decide 1,000 applications with a
slowed model, so each holds dozens of runs in flight. While they decide, one is
killed with SIGKILL (its partitions move once its session expires), a fourth
joins, and one leaves with SIGTERM: three rebalances, each seen complete on the
group before the next. At the end every application has exactly one
authoritative decision and one complete authoritative attempt; no (trace,
attempt) has two writers (its ``seq`` runs 0, 1, 2... once each and its hash
chain is intact: a second writer would repeat seqs or fork the chain);
interrupted attempts read as ABORTED; and the group has committed to the end of
the input topic.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from flightrec.agents.loan_agent import LOAN_AGENT
from flightrec.agents.loan_samples import synthetic_applications
from flightrec.agents.worker import consumer_group
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.settings import Settings
from flightrec.replay.history import RunHistory

from recorder_support import read_topic
from test_worker import WorkerHandle, committed_to_end, encode_all, produce
from test_worker_kill import _decisions, _histories

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APPLICATIONS = 1000
# A run makes a few model calls; at this latency it lasts seconds, so every
# worker holds its MAX_IN_FLIGHT runs in flight at each membership change, and
# the batch outlasts the three rebalances (about 90 s in all on two cores).
MODEL_LATENCY_MS = 800
MAX_IN_FLIGHT = 32
# The killed member keeps its partitions until its session expires: short, so
# the first rebalance comes within seconds (the broker's minimum is 6 s).
SESSION_TIMEOUT_S = 10.0
# Decisions before the kill: the workers are warm and deep in the batch.
DECIDED_BEFORE_KILL = 100


def _assignment(settings: Settings) -> tuple[ConsumerGroupState, list[set[int]]]:
    """The state of the worker group and each member's partitions of the input topic."""
    group = consumer_group(settings, LOAN_AGENT)
    admin = AdminClient(settings.kafka_client_config())
    description = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    topic = settings.topics.applications
    members = [
        {tp.partition for tp in member.assignment.topic_partitions if tp.topic == topic}
        for member in description.members
    ]
    return description.state, members


def _decided(settings: Settings) -> int:
    return len({r.key for r in read_topic(settings, settings.topics.decisions)})


def _wait_for_group(
    settings: Settings, members: int, alive: list[WorkerHandle], timeout_s: float = 90.0
) -> float:
    """Until the group is stable with ``members`` members sharing every input
    partition (each exactly once); returns how long that took."""
    partitions = set(range(len(_input_partitions(settings))))
    start = time.monotonic()
    while True:
        for worker in alive:
            assert worker.alive(), worker.log()[-4000:]
        state, assigned = _assignment(settings)
        if (
            state == ConsumerGroupState.STABLE
            and len(assigned) == members
            and all(assigned)
            and sum(len(a) for a in assigned) == len(partitions)
            and set().union(*assigned) == partitions
        ):
            return time.monotonic() - start
        assert time.monotonic() - start < timeout_s, (
            f"group not stable with {members} members after {timeout_s}s: {state} {assigned}"
        )
        time.sleep(0.5)


def _input_partitions(settings: Settings) -> list[int]:
    """The partitions of the input topic."""
    admin = AdminClient(settings.kafka_client_config())
    topic = settings.topics.applications
    return sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions)


def _check_mid_run(settings: Settings, step: str) -> int:
    """Decisions so far; fails if the batch is already decided (the step would
    then not happen mid-run, and the test would prove nothing)."""
    decided = _decided(settings)
    assert decided < APPLICATIONS, f"every application was decided before {step}: retune"
    return decided


def _check_single_writer(history: RunHistory) -> None:
    """Each (trace, attempt) has one writer: seq 0..n-1 once each, one chain."""
    for attempt in history.attempts:
        where = (history.trace_id, attempt.number)
        seqs = Counter(event.seq for event in attempt.events)
        repeated = sorted(seq for seq, n in seqs.items() if n > 1)
        assert not repeated, f"{where}: seq written twice {repeated}: two writers"
        assert sorted(seqs) == list(range(len(seqs))), f"{where}: seqs {sorted(seqs)}"
        assert attempt.chain.ok, f"{where}: hash chain {attempt.chain.describe()}"
        started = [e for e in attempt.events if e.kind == "RUN_STARTED"]
        assert len(started) == 1 and attempt.events[0] is started[0], where


def test_three_workers_one_killed_one_joining_one_leaving_decide_each_application_once(
    settings: Settings, tmp_path: Path
) -> None:
    apply_contracts(settings)
    settings = settings.model_copy(
        update={
            "app_id": f"scaleout-{settings.topics.prefix.strip('.')}",
            "worker_instance_id": None,  # dynamic membership
            "worker_session_timeout_s": SESSION_TIMEOUT_S,
            "model_latency_ms": MODEL_LATENCY_MS,
            "max_in_flight": MAX_IN_FLIGHT,
            "worker_status_interval_s": 5.0,
        }
    )
    apps = synthetic_applications(APPLICATIONS, seed=1234, run_id="scaleout")
    produce(
        settings,
        [
            (a.application_id.encode(), v)
            for a, v in zip(apps, encode_all(settings, apps), strict=True)
        ],
    )
    workers = {
        name: WorkerHandle(settings, tmp_path / f"{name}.log") for name in ("w1", "w2", "w3", "w4")
    }
    for worker in workers.values():
        # Dynamic membership whatever the caller's environment says.
        worker.env.pop("FLIGHTREC_WORKER_INSTANCE_ID", None)
    w1, w2, w3, w4 = workers.values()
    began = time.monotonic()
    timings: dict[str, float] = {}
    try:
        for worker in (w1, w2, w3):
            worker.start()
        timings["formed"] = _wait_for_group(settings, 3, [w1, w2, w3], timeout_s=120.0)
        deadline = time.monotonic() + 120
        while _decided(settings) < DECIDED_BEFORE_KILL:
            for worker in (w1, w2, w3):
                assert worker.alive(), worker.log()[-4000:]
            assert time.monotonic() < deadline, "no progress before the kill"
            time.sleep(0.3)

        # 1. SIGKILL a member: its partitions move when its session expires.
        decided_at_kill = _check_mid_run(settings, "the kill")
        w2.kill()
        timings["kill"] = _wait_for_group(settings, 2, [w1, w3])

        # 2. A fourth member joins.
        decided_at_join = _check_mid_run(settings, "the join")
        w4.start()
        timings["join"] = _wait_for_group(settings, 3, [w1, w3, w4])

        # 3. A member leaves cleanly: it drains, commits and leaves the group.
        decided_at_leave = _check_mid_run(settings, "the leave")
        left = time.monotonic()
        w1.stop()
        # Checked at the end, after the guarantees above: a failed clean stop
        # must not hide what it did to the others' results.
        leave_returncode = w1.process.returncode
        timings["leave"] = _wait_for_group(settings, 2, [w3, w4]) + (time.monotonic() - left)

        # Outputs may exceed the inputs (a run decided, then interrupted before
        # its ack, is decided again), so wait for every application by id.
        wanted = {a.application_id for a in apps}
        deadline = time.monotonic() + 150
        while {r.key.decode() for r in read_topic(settings, settings.topics.decisions)} < wanted:
            for worker in (w3, w4):
                assert worker.alive(), worker.log()[-4000:]
            assert time.monotonic() < deadline, "not every application was decided"
            time.sleep(0.5)
        timings["decided"] = time.monotonic() - began
        # Every input is acked, so the group commits to the log end.
        assert committed_to_end(settings), "the worker group did not commit to the end"
        time.sleep(2.0)  # a duplicate, if any, would land now
    finally:
        for worker in workers.values():
            worker.stop()

    decisions = asyncio.run(_decisions(settings))
    by_app = defaultdict(list)
    for d in decisions:
        by_app[d.application_id].append(d)
    assert set(by_app) == {a.application_id for a in apps}

    histories = {h.trace_id: h for h in asyncio.run(_histories(settings))}
    assert len(histories) == APPLICATIONS
    retried = aborted = duplicates = 0
    for app_id, app_decisions in by_app.items():
        traces = {d.trace_id for d in app_decisions}
        assert len(traces) == 1, f"{app_id} decided under several trace ids: {traces}"
        history = histories[traces.pop()]
        numbers = [a.number for a in history.attempts]
        assert numbers == sorted(set(numbers)) and numbers[0] >= 1, numbers
        assert history.intact, history.problems()
        _check_single_writer(history)
        authoritative = history.authoritative
        assert authoritative is not None, f"{app_id}: no complete attempt"
        assert authoritative.number == max(a.number for a in history.attempts if a.complete)
        of_record = [d for d in app_decisions if d.attempt == authoritative.number]
        assert len(of_record) == 1, (app_id, [d.attempt for d in app_decisions])
        assert of_record[0].outcome == authoritative.outcome
        if len(history.attempts) > 1:
            retried += 1
        for attempt in history.attempts:
            duplicates += attempt.duplicates
            if not attempt.complete:
                aborted += 1
                assert attempt.status == "ABORTED", attempt.status
                assert attempt is not authoritative
    # The membership changes interrupted real work, or this test proved nothing.
    assert retried > 0
    assert aborted > 0
    logs = {name: w.log() for name, w in workers.items()}
    # Every application is good: the DLQ stays empty, whatever moved or stopped.
    dead = read_topic(settings, settings.topics.applications_dlq)
    assert dead == [], [(r.key, r.headers) for r in dead]
    # A clean stop mid-run settles or fences its runs and exits 0.
    assert leave_returncode == 0, logs["w1"][-6000:]
    fenced = {name: log.count("FencedError") for name, log in logs.items()}
    cancelled = {name: log.count("run(s) cancelled") for name, log in logs.items()}
    print(
        f"decided before kill/join/leave={decided_at_kill}/{decided_at_join}/{decided_at_leave} "
        f"retried_traces={retried} aborted_attempts={aborted} exact_duplicates={duplicates} "
        f"decision_records={len(decisions)} fenced={fenced} revoke_cancels={cancelled} "
        f"timings_s={ {k: round(v, 1) for k, v in timings.items()} }"
    )
