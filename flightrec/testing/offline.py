"""An in-process schema registry holding flightrec's contracts, for benchmarks and tests.

confluent-kafka's in-process mock registry (what its public
``SchemaRegistryClient.new_client`` returns for a ``mock://`` URL) loaded with
every schema and its data-contract rules, exactly as ``flightrec contracts
apply`` registers them, and optionally the contracts of agents
(``AgentDefinition.contracts``).
After ``Codec.start()`` the codec never calls a registry again, so a benchmark
on this client measures flightrec's own encode/decode cost, not HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from flightrec.contracts.schema_files import (
    CONTRACTS,
    ContractSpec,
    contract_rule_set,
    load_schemas,
    schema_text,
    subject_for,
)
from flightrec.contracts.settings import Settings

__all__ = ["offline_registry"]


def offline_registry(
    settings: Settings, agent_contracts: Sequence[ContractSpec] = ()
) -> SchemaRegistryClient:
    """A registry client with every contract of ``settings`` registered, and
    ``agent_contracts`` (each name once, flightrec's own first)."""
    client = SchemaRegistryClient.new_client({"url": "mock://flightrec"})
    schemas = load_schemas(extra=[s for s in agent_contracts if s.schema is not None])
    specs = {spec.name: spec for spec in CONTRACTS}
    for spec in agent_contracts:
        specs.setdefault(spec.name, spec)
    for spec in specs.values():
        schema = Schema(
            schema_text(schemas[spec.name]), "AVRO", rule_set=contract_rule_set(spec, settings)
        )
        client.register_schema(subject_for(spec, settings), schema)
    return client
