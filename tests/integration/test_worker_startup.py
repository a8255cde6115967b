"""Start-up checks of ``flightrec worker``: topics whose partition counts must
agree (an agent's input and the attempt ledger) fail start-up with one clear
message naming them, not a stream of dead letters."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from flightrec.contracts.settings import Settings, Topics

pytestmark = pytest.mark.integration


def test_a_partition_count_mismatch_fails_start_up_naming_the_topics(stack: Settings) -> None:
    settings = stack.model_copy(
        update={"topics": Topics().with_prefix(f"t{uuid.uuid4().hex[:8]}.")}
    )
    # The input topic exists with 2 partitions; the worker creates the ledger with 6.
    admin = AdminClient(settings.kafka_client_config())
    futures = admin.create_topics([NewTopic(settings.topics.applications, 2, 1)])
    for future in futures.values():
        future.result(30)
    result = subprocess.run(
        [sys.executable, "-m", "flightrec", "worker"],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert "same number of partitions" in message
    assert f"{settings.topics.applications}: 2" in message
    assert f"{settings.topics.attempts}: 6" in message
