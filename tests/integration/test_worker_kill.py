"""The kill test: SIGKILL the worker again and again while it decides, restart it,
and check the guarantees of docs/design.md hold on what the broker kept.

Every application gets a decision; every trace has exactly one authoritative
attempt (the last complete one), whose decision is on ``loan.decisions``;
attempt numbers of a trace are distinct and count up from 1; every attempt is
gap-free and hash-chained, and interrupted attempts are identifiable as aborted.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from flightrec.agents.loan_samples import synthetic_applications
from flightrec.contracts.codec import Codec
from flightrec.contracts.events import LoanDecision
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.settings import Settings
from flightrec.replay.history import RunHistory
from flightrec.replay.reader import CotReader

from recorder_support import read_topic
from test_worker import WorkerHandle, encode_all, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APPLICATIONS = 500
KILLS = 5


def _count(settings: Settings) -> int:
    return len(read_topic(settings, settings.topics.decisions))


async def _histories(settings: Settings) -> list[RunHistory]:
    codec = Codec(settings, contracts=("cot_event",))
    await codec.start()
    try:
        async with CotReader(settings, codec) as reader:
            return await reader.read_histories()
    finally:
        await codec.close()


def test_sigkill_and_restart_keeps_one_authoritative_decision_per_application(
    settings: Settings, tmp_path: Path
) -> None:
    apply_contracts(settings)
    # Static membership, as a supervisor restarting one worker would configure:
    # the restarted worker takes its partitions back without a session timeout.
    settings = settings.model_copy(
        update={
            "app_id": f"kill-{settings.topics.prefix.strip('.')}",
            "worker_instance_id": "kill-test-worker",
        }
    )
    apps = synthetic_applications(APPLICATIONS, seed=99, run_id="kill")
    produce(
        settings,
        [
            (a.application_id.encode(), v)
            for a, v in zip(apps, encode_all(settings, apps), strict=True)
        ],
    )
    rng = random.Random(2026)
    worker = WorkerHandle(settings, tmp_path / "worker.log")
    kills = 0
    try:
        worker.start()
        # Kill while decisions are flowing: wait for some progress, then a
        # random extra moment, so kills land mid-run as often as between runs.
        for kill in range(KILLS):
            target = (kill + 1) * APPLICATIONS // (KILLS + 2)
            deadline = time.monotonic() + 180
            while _count(settings) < target:
                assert worker.alive(), worker.log()[-4000:]
                assert time.monotonic() < deadline, f"no progress towards {target} decisions"
                time.sleep(0.3)
            time.sleep(rng.uniform(0.0, 1.5))
            worker.kill()
            kills += 1
            worker.start()
        # Outputs may exceed the inputs (a run decided, then killed before its
        # ack, is decided again), so wait for every application by id.
        wanted = {a.application_id for a in apps}
        deadline = time.monotonic() + 300
        while {r.key.decode() for r in read_topic(settings, settings.topics.decisions)} < wanted:
            assert worker.alive(), worker.log()[-4000:]
            assert time.monotonic() < deadline, "not every application was decided"
            time.sleep(0.5)
        time.sleep(3.0)  # let any last re-delivery settle
    finally:
        worker.stop()
    assert kills == KILLS

    decisions = asyncio.run(_decisions(settings))
    assert read_topic(settings, settings.topics.applications_dlq) == []
    by_app: dict[str, list[LoanDecision]] = defaultdict(list)
    for d in decisions:
        by_app[d.application_id].append(d)
    assert set(by_app) == {a.application_id for a in apps}

    histories = {h.trace_id: h for h in asyncio.run(_histories(settings))}
    assert len(histories) == APPLICATIONS
    retried = aborted = 0
    for app_id, app_decisions in by_app.items():
        traces = {d.trace_id for d in app_decisions}
        assert len(traces) == 1, f"{app_id} decided under several trace ids: {traces}"
        history = histories[traces.pop()]
        numbers = [a.number for a in history.attempts]
        assert numbers == sorted(set(numbers)) and numbers[0] >= 1, numbers
        assert history.intact, history.problems()
        authoritative = history.authoritative
        assert authoritative is not None, f"{app_id}: no complete attempt"
        assert authoritative.number == max(a.number for a in history.attempts if a.complete)
        of_record = [d for d in app_decisions if d.attempt == authoritative.number]
        assert len(of_record) == 1, (app_id, [d.attempt for d in app_decisions])
        assert of_record[0].outcome == authoritative.outcome
        if len(history.attempts) > 1:
            retried += 1
        aborted += sum(1 for a in history.attempts if not a.complete)
        for attempt in history.attempts:
            if attempt is not authoritative and not attempt.complete:
                assert attempt.status == "ABORTED", attempt.status
    # The kills interrupted real work, or this test proved nothing.
    assert retried > 0
    print(f"kills={kills} retried_traces={retried} aborted_attempts={aborted}")


async def _decisions(settings: Settings) -> list[LoanDecision]:
    records = await asyncio.to_thread(read_topic, settings, settings.topics.decisions)
    codec = Codec(settings, contracts=("loan_decision",))
    await codec.start()
    try:
        return [await codec.decode_decision(r.value) for r in records]
    finally:
        await codec.close()
