"""Contracts: event models, Avro schemas, data-contract rules, codec, embedded registry, errors, settings."""
