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
from confluent_kafka.schema_registry.common import avro as common_avro
from confluent_kafka.schema_registry.common.avro import parse_schema_with_repo
from fastavro.schema import expand_schema

from flightrec.contracts import _confluent_private as private
from flightrec.contracts._confluent_private import verbose_compatibility
from flightrec.contracts.codec import Codec
from flightrec.contracts.schema_files import load_schemas, schema_text
from flightrec.contracts.settings import Settings
from flightrec.testing import offline_registry, sample_cot_events

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


# -- the schema memos ----------------------------------------------------------


def _parsed(name: str) -> Any:
    return parse_schema_with_repo(schema_text(load_schemas()[name]), named_schemas={})


async def test_encoding_and_decoding_go_through_the_memos() -> None:
    # No install here: building a Codec must install the memos.
    settings = Settings()
    codec = Codec(settings, offline_registry(settings), contracts=("cot_event",))
    await codec.start()
    try:
        event = sample_cot_events()[0]
        await codec.decode_cot(await codec.encode_cot(event))  # warm: first sight of the schema
        tags_before = private.inline_tags_memo.hits
        expand_before = private.expand_schema_memo.hits
        decoded = await codec.decode_cot(await codec.encode_cot(event))
        assert decoded == event
        # Encode and decode each ask for the tags; encode expands the schema.
        assert private.inline_tags_memo.hits >= tags_before + 2
        assert private.expand_schema_memo.hits >= expand_before + 1
    finally:
        await codec.close()


def test_the_serializer_modules_still_call_the_functions_the_memos_replace() -> None:
    private.install_schema_memos()
    for module in private.SERIALIZER_MODULES:
        assert module.get_inline_tags is private.inline_tags_memo
        assert module.expand_schema is private.expand_schema_memo
        # The serializers look both names up in their module on every record;
        # if an upgrade binds them another way the memo would be dead weight.
        source = inspect.getsource(module)
        assert "get_inline_tags(" in source
        assert "expand_schema(" in source


def test_memo_matches_the_library_and_is_per_schema_object() -> None:
    for name in load_schemas():
        parsed = _parsed(name)
        expected = dict(common_avro.get_inline_tags(parsed))
        first = private.inline_tags_memo(parsed)
        assert first == expected
        assert private.inline_tags_memo(parsed) is first
        # An equal but distinct schema object gets its own entry.
        assert private.inline_tags_memo(_parsed(name)) == expected


def test_pii_tags_are_found_through_the_memo() -> None:
    tags = private.inline_tags_memo(_parsed("loan_application"))
    tagged = {path.rsplit(".", 1)[-1] for path, names in tags.items() if "PII" in names}
    assert {"applicant_name", "national_id", "bank_account"} <= tagged


def test_expanded_schema_is_computed_once_and_equals_fastavro() -> None:
    parsed = _parsed("cot_event")
    first = private.expand_schema_memo(parsed)
    assert first == expand_schema(parsed)
    assert private.expand_schema_memo(parsed) is first
