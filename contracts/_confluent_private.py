"""The one place flightrec uses a private part of confluent-kafka.

Everything else talks to confluent-kafka through its public API. What is here
has no public equivalent; tests/unit/test_confluent_private.py asserts that the
private part still exists and behaves as used here, so an upgrade that changes
it fails that test rather than a plan in production.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

__all__ = ["verbose_compatibility"]


def verbose_compatibility(
    client: SchemaRegistryClient, subject: str, schema: Schema, *, transitive: bool
) -> dict[str, Any]:
    """The registry's compatibility test of ``schema`` with its explanation.

    Returns the registry's response: ``is_compatible`` and, when incompatible,
    ``messages`` naming the offending fields. Transitive subjects are tested
    against every version, the others against the latest.

    Private: the public ``test_compatibility`` and
    ``test_compatibility_all_versions`` (confluent-kafka 2.16) return only
    ``is_compatible`` and drop ``messages``; no public method returns them.
    ``_rest_client`` is the REST layer those methods use (authentication, TLS,
    bounded retries), so this request is sent exactly as theirs are.
    """
    version_path = "versions" if transitive else "versions/latest"
    url = f"compatibility/subjects/{quote(subject, safe='')}/{version_path}?verbose=true"
    response: dict[str, Any] = client._rest_client.post(url, body=schema.to_dict())
    return response
