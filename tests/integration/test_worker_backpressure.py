"""Backpressure on the real stack: a backlog much larger than the partition cap
makes the worker pause and resume its partitions again and again, and no record
is lost to it (docs/design.md, Concurrency and commits).

A pause can drop records the consumer had already fetched (Faust hands out the
rest of a fetched batch only for partitions still active), and its fetch
position is past them by then; resumed as is, it would read on from there, take
the jump for a hole in the log and commit across it. The worker seeks back to
the dispatcher's next offset before it resumes. Without that seek this test
ends with records never decided, and with offsets committed past them or lag
left behind.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from flightrec.agents.loan_samples import synthetic_applications
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.settings import Settings

from recorder_support import read_topic
from test_worker import WorkerHandle, committed_to_end, encode_all, produce, wait_for_outputs

pytestmark = pytest.mark.integration

APPLICATIONS = 400


def test_a_backlog_past_the_partition_cap_is_decided_whole(
    settings: Settings, tmp_path: Path
) -> None:
    apply_contracts(settings)
    settings = settings.model_copy(
        update={
            "app_id": f"backpressure-{settings.topics.prefix.strip('.')}",
            # A cap far below what one fetch brings: a partition is paused while
            # its fetched batch is still being handed out, over and over.
            "partition_buffer": 4,
            "max_in_flight": 8,
            "model_latency_ms": 5.0,
        }
    )
    apps = synthetic_applications(APPLICATIONS, seed=77, run_id="backpressure")
    produce(
        settings,
        [
            (a.application_id.encode(), v)
            for a, v in zip(apps, encode_all(settings, apps), strict=True)
        ],
    )
    worker = WorkerHandle(settings, tmp_path / "worker.log")
    worker.start()
    try:
        wait_for_outputs(worker, APPLICATIONS, timeout_s=300.0)
        assert committed_to_end(settings), worker.log()[-4000:]
    finally:
        worker.stop()
    decided = Counter(
        record.key.decode() for record in read_topic(settings, settings.topics.decisions)
    )
    assert set(decided) == {a.application_id for a in apps}
    assert set(decided.values()) == {1}
