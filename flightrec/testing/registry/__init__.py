"""Embedded schema registry: the Confluent Schema Registry REST API, state in Kafka.

For local development and tests, where Confluent Schema Registry is not
running; production points ``schema_registry_url`` at Confluent's. It serves
what confluent-kafka's schema-registry clients use (Avro schemas, ``metadata``
and ``ruleSet`` stored as sent, compatibility decided by Apache Avro's checker)
and keeps its state in a compacted single-partition topic (default
``_schemas``), so ids and versions survive restarts. One instance per topic.

Three ways to run it:

- in-process on Kafka: :func:`start_registry` (a :class:`RunningRegistry`);
- as a child process, the way the local stack runs it:
  :func:`registry_process` (a :class:`RegistryProcess`) starts
  ``python -m flightrec.testing.registry --bootstrap-servers HOST:PORT --port
  PORT [--host 127.0.0.1] [--topic _schemas]``;
- without a broker, for unit tests: ``build_app(RegistryService(MemoryLog()))``
  is the aiohttp application over a registry kept in memory
  (:class:`KafkaLog` is the storage the other two use).
"""

from flightrec.testing.registry.process import RegistryProcess, registry_process
from flightrec.testing.registry.server import RunningRegistry, build_app, start_registry
from flightrec.testing.registry.service import RegistryService
from flightrec.testing.registry.storage import KafkaLog, MemoryLog

__all__ = [
    "KafkaLog",
    "MemoryLog",
    "RegistryProcess",
    "RegistryService",
    "RunningRegistry",
    "build_app",
    "registry_process",
    "start_registry",
]
