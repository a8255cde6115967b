"""An in-process schema registry holding flightrec's contracts, for benchmarks.

confluent-kafka's in-process mock registry (what its public
``SchemaRegistryClient.new_client`` returns for a ``mock://`` URL) loaded with
every schema and its data-contract rules, exactly as ``flightrec contracts
apply`` registers them.
After ``Codec.start()`` the codec never calls a registry again, so a benchmark
on this client measures flightrec's own encode/decode cost, not HTTP.
"""

from __future__ import annotations

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from flightrec.contracts.rules import rule_set_for
from flightrec.contracts.schema_files import CONTRACTS, load_schemas, schema_text, subject_for
from flightrec.contracts.settings import Settings

__all__ = ["offline_registry"]


def offline_registry(settings: Settings) -> SchemaRegistryClient:
    """A registry client with every contract of ``settings`` registered."""
    client = SchemaRegistryClient.new_client({"url": "mock://flightrec"})
    schemas = load_schemas()
    for spec in CONTRACTS:
        schema = Schema(
            schema_text(schemas[spec.name]), "AVRO", rule_set=rule_set_for(spec.name, settings)
        )
        client.register_schema(subject_for(spec, settings), schema)
    return client
