"""Embedded schema registry: the Confluent Schema Registry REST API, state in Kafka.

For local development and tests, where Confluent Schema Registry is not
running; production points ``schema_registry_url`` at Confluent's. It serves
what confluent-kafka's schema-registry clients use (Avro schemas, ``metadata``
and ``ruleSet`` stored as sent, compatibility decided by Apache Avro's checker)
and keeps its state in a compacted single-partition topic (default
``_schemas``), so ids and versions survive restarts. One instance per topic.

Run it with ``python -m flightrec.testing.registry --bootstrap-servers HOST:PORT --port
PORT [--host 127.0.0.1] [--topic _schemas]``, or in-process with
:func:`start_registry`.
"""

from flightrec.testing.registry.server import RunningRegistry, build_app, start_registry

__all__ = ["RunningRegistry", "build_app", "start_registry"]
