"""No broker at the bootstrap address: topic creation fails with one clear error."""

from __future__ import annotations

import pytest

from flightrec.contracts.errors import StackError
from flightrec.contracts.settings import Settings
from flightrec.kafka.topics import ensure_topics


def test_unreachable_broker_is_a_stack_error_naming_the_servers(
    unreachable_broker: Settings,
) -> None:
    servers = unreachable_broker.bootstrap_servers
    settings = Settings.from_env({"FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS": servers})
    with pytest.raises(StackError) as info:
        ensure_topics(settings, timeout_s=2.0)
    assert "did not answer" in str(info.value)
    assert info.value.context["bootstrap_servers"] == servers
