"""The registry as the stack runs it: ``python -m flightrec.testing.registry`` processes.

Messages written with confluent-kafka's ``AvroSerializer`` through it are read
back by ``AvroDeserializer`` in another process (with a cold cache, so the
schema comes from the registry by id); data-contract rules registered with a
schema run in the serializer; state survives a process restart; SIGTERM stops
it cleanly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.schema_registry import (
    Rule,
    RuleKind,
    RuleMode,
    RuleSet,
    Schema,
    SchemaRegistryClient,
)
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.common.serde import RuleConditionError
from confluent_kafka.schema_registry.rule_registry import RuleRegistry
from confluent_kafka.schema_registry.rules.cel.cel_executor import CelExecutor
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from flightrec.contracts.settings import Settings
from flightrec.testing.registry.process import RegistryProcess, registry_process

pytestmark = pytest.mark.integration

LOAN = json.dumps(
    {
        "type": "record",
        "name": "Loan",
        "namespace": "t",
        "fields": [
            {"name": "application_id", "type": "string"},
            {"name": "amount", "type": "int"},
        ],
    }
)

# Reads framed Avro bytes (hex on stdin) with a fresh client: prints the record.
READER = """
import json, sys
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
url, topic = sys.argv[1], sys.argv[2]
client = SchemaRegistryClient({"url": url})
data = bytes.fromhex(sys.stdin.read().strip())
value = AvroDeserializer(client)(data, SerializationContext(topic, MessageField.VALUE))
print(json.dumps(value, sort_keys=True))
"""


@pytest.fixture
def registry(stack: Settings) -> Iterator[RegistryProcess]:
    with registry_process(stack.bootstrap_servers, f"_schemas_{uuid.uuid4().hex}") as proc:
        yield proc


def read_elsewhere(url: str, topic: str, data: bytes) -> object:
    done = subprocess.run(
        [sys.executable, "-c", READER, url, topic],
        input=data.hex(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_serializer_to_deserializer_in_another_process(registry: RegistryProcess) -> None:
    topic = f"loans-{uuid.uuid4().hex[:8]}"
    client = SchemaRegistryClient({"url": registry.url})
    serializer = AvroSerializer(client, LOAN)
    value = {"application_id": "A-1", "amount": 1200}
    data = serializer(value, SerializationContext(topic, MessageField.VALUE))
    assert data is not None
    schema_id = int.from_bytes(data[1:5], "big")
    assert data[0] == 0
    assert client.get_latest_version(f"{topic}-value").schema_id == schema_id
    assert read_elsewhere(registry.url, topic, data) == value
    client.close()


def test_registered_rules_run_in_the_serializer(registry: RegistryProcess) -> None:
    topic = f"governed-{uuid.uuid4().hex[:8]}"
    rule = Rule(
        name="amountPositive",
        doc=None,
        kind=RuleKind.CONDITION,
        mode=RuleMode.WRITE,
        type="CEL",
        tags=None,
        params=None,
        expr="message.amount > 0",
        on_success=None,
        on_failure="ERROR",
        disabled=False,
    )
    client = SchemaRegistryClient({"url": registry.url})
    client.register_schema(
        f"{topic}-value",
        Schema(LOAN, "AVRO", rule_set=RuleSet(migration_rules=None, domain_rules=[rule])),
    )
    rules = RuleRegistry()  # type: ignore[no-untyped-call]
    rules.register_executor(CelExecutor())  # type: ignore[no-untyped-call]
    # Rules run only on the registered latest schema (auto-register skips them).
    serializer = AvroSerializer(
        client,
        None,
        conf={"auto.register.schemas": False, "use.latest.version": True},
        rule_registry=rules,
    )
    ctx = SerializationContext(topic, MessageField.VALUE)
    good = {"application_id": "A-2", "amount": 5}
    data = serializer(good, ctx)
    assert data is not None
    assert read_elsewhere(registry.url, topic, data) == good
    with pytest.raises(SerializationError) as failed:
        serializer({"application_id": "A-3", "amount": -5}, ctx)
    # The ERROR action chains the rule's own failure, which quotes the expression.
    assert isinstance(failed.value.__cause__, RuleConditionError)
    assert "message.amount > 0" in str(failed.value.__cause__)
    client.close()


def test_state_survives_a_process_restart_and_sigterm_is_clean(stack: Settings) -> None:
    topic = f"_schemas_{uuid.uuid4().hex}"
    evolved = json.loads(LOAN)
    evolved["fields"].append({"name": "term", "type": "int", "default": 12})
    with registry_process(stack.bootstrap_servers, topic) as first:
        client = SchemaRegistryClient({"url": first.url})
        one = client.register_schema("loans-value", Schema(LOAN, "AVRO"))
        two = client.register_schema("loans-value", Schema(json.dumps(evolved), "AVRO"))
        client.set_compatibility("loans-value", "FULL")
        client.close()
        code = first.terminate()
        assert code == 0, first.log()
        assert "stopping" in first.log()
    with registry_process(stack.bootstrap_servers, topic) as second:
        client = SchemaRegistryClient({"url": second.url})
        assert client.get_versions("loans-value") == [1, 2]
        assert client.get_version("loans-value", 1).schema_id == one
        assert client.register_schema("loans-value", Schema(json.dumps(evolved), "AVRO")) == two
        assert client.get_compatibility("loans-value") == "FULL"
        client.close()
