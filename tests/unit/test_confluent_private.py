"""The private parts of confluent-kafka that flightrec.contracts._confluent_private
uses still exist and behave as used there: an upgrade that changes them fails here.

Each check runs the real ``SchemaRegistryClient`` against the embedded registry
over HTTP, and compares with what the client's public API says where it says
anything.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from flightrec.contracts._confluent_private import verbose_compatibility
from flightrec.contracts.settings import Settings

SUBJECT = "private-check-value"


def _record(*extra: dict[str, Any]) -> Schema:
    fields = [{"name": "id", "type": "string"}, *extra]
    return Schema(json.dumps({"type": "record", "name": "R", "fields": fields}), "AVRO")


@pytest.fixture
def client(http_registry: Settings) -> Iterator[SchemaRegistryClient]:
    registry = SchemaRegistryClient({"url": http_registry.schema_registry_url})
    registry.register_schema(SUBJECT, _record())
    registry.set_compatibility(SUBJECT, "BACKWARD")
    yield registry
    registry.close()


def test_the_client_still_has_the_rest_layer_verbose_compatibility_posts_through(
    client: SchemaRegistryClient,
) -> None:
    rest = getattr(client, "_rest_client", None)
    assert rest is not None, "SchemaRegistryClient._rest_client is gone"
    assert "body" in inspect.signature(rest.post).parameters, "_rest_client.post takes no body"


@pytest.mark.parametrize("transitive", [False, True])
def test_an_incompatible_schema_comes_back_with_the_registrys_messages(
    client: SchemaRegistryClient, transitive: bool
) -> None:
    required = _record({"name": "reviewer", "type": "string"})
    response = verbose_compatibility(client, SUBJECT, required, transitive=transitive)
    assert response["is_compatible"] is False
    assert client.test_compatibility(SUBJECT, required) is False  # the public verdict agrees
    assert any("reviewer" in str(m) for m in response["messages"]), response


@pytest.mark.parametrize("transitive", [False, True])
def test_a_compatible_schema_is_compatible(client: SchemaRegistryClient, transitive: bool) -> None:
    optional = _record({"name": "reviewer", "type": ["null", "string"], "default": None})
    response = verbose_compatibility(client, SUBJECT, optional, transitive=transitive)
    assert response["is_compatible"] is True
    assert client.test_compatibility(SUBJECT, optional) is True
