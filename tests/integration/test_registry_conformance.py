"""Conformance of the embedded registry, driven through confluent-kafka's clients.

Every test runs twice, through ``SchemaRegistryClient`` and through
``AsyncSchemaRegistryClient``, over HTTP. With ``SCHEMA_REGISTRY_URL`` set the
same suite runs against that registry (Confluent's, for instance) and the
restart test is skipped; otherwise this module starts its own registry process
on the session stack's Kafka with a fresh storage topic.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from confluent_kafka.schema_registry import (
    AsyncSchemaRegistryClient,
    Metadata,
    MetadataProperties,
    Rule,
    RuleKind,
    RuleMode,
    RuleSet,
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
)

from flightrec.contracts.settings import Settings
from flightrec.testing.registry import start_registry
from flightrec.testing.registry.process import registry_process

pytestmark = pytest.mark.integration

EXTERNAL_URL = os.environ.get("SCHEMA_REGISTRY_URL")


def record(*fields: dict[str, Any], name: str = "Loan") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "t", "fields": list(fields)})


A_INT = {"name": "a", "type": "int"}
A_STR_DEFAULT = {"name": "a", "type": "string", "default": "x"}
B_INT = {"name": "b", "type": "int"}
B_INT_DEFAULT = {"name": "b", "type": "int", "default": 0}


@pytest.fixture(scope="module")
def registry_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The registry under test: SCHEMA_REGISTRY_URL, or our own process."""
    if EXTERNAL_URL:
        yield EXTERNAL_URL.rstrip("/")
        return
    stack: Settings = request.getfixturevalue("stack")
    with registry_process(stack.bootstrap_servers, f"_schemas_{uuid.uuid4().hex}") as proc:
        yield proc.url


class Api:
    """One face over both clients: ``await api.call("register_schema", ...)``."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self.url = url
        self.sync = SchemaRegistryClient({"url": url}) if kind == "sync" else None
        self.aio = AsyncSchemaRegistryClient({"url": url}) if kind == "async" else None

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.sync is not None:
            return await asyncio.to_thread(getattr(self.sync, name), *args, **kwargs)
        assert self.aio is not None
        return await getattr(self.aio, name)(*args, **kwargs)

    async def fails(self, name: str, *args: Any, **kwargs: Any) -> SchemaRegistryError:
        with pytest.raises(SchemaRegistryError) as info:
            await self.call(name, *args, **kwargs)
        return info.value

    async def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        if self.aio is not None:
            await self.aio.aclose()


@pytest.fixture(params=["sync", "async"])
async def api(request: pytest.FixtureRequest, registry_url: str) -> AsyncIterator[Api]:
    client = Api(request.param, registry_url)
    yield client
    await client.close()


@pytest.fixture
def subject() -> str:
    return f"t{uuid.uuid4().hex[:10]}-value"


# -- registration -------------------------------------------------------------------


async def test_register_same_schema_same_id_and_version(api: Api, subject: str) -> None:
    first = await api.call("register_schema_full_response", subject, Schema(record(A_INT), "AVRO"))
    # Same schema with other layout and key order: same schema, same answer.
    relaid = json.dumps(json.loads(record(A_INT)), indent=2, sort_keys=True)
    fresh = Api(api.kind, api.url)
    try:
        again = await fresh.call("register_schema_full_response", subject, Schema(relaid, "AVRO"))
        elsewhere = await fresh.call("register_schema", subject + "-other", Schema(relaid, "AVRO"))
        versions = await fresh.call("get_versions", subject)
    finally:
        await fresh.close()
    assert isinstance(first.schema_id, int)
    assert again.schema_id == first.schema_id
    assert elsewhere == first.schema_id
    assert versions == [1]


async def test_compatible_evolution_is_a_new_version(api: Api, subject: str) -> None:
    v1 = await api.call("register_schema", subject, Schema(record(A_INT), "AVRO"))
    v2 = await api.call("register_schema", subject, Schema(record(A_INT, B_INT_DEFAULT), "AVRO"))
    latest = await api.call("get_version", subject, "latest")
    assert v2 != v1
    assert latest.version == 2
    assert latest.schema_id == v2
    assert json.loads(latest.schema.schema_str) == json.loads(record(A_INT, B_INT_DEFAULT))
    assert await api.call("get_versions", subject) == [1, 2]
    fetched = await api.call("get_schema", v1)
    assert json.loads(fetched.schema_str) == json.loads(record(A_INT))


@pytest.mark.parametrize(
    ("level", "old", "new", "named"),
    [
        # BACKWARD: the new schema must read old data; a new field needs a default.
        ("BACKWARD", [A_INT], [A_INT, B_INT], "b"),
        # FORWARD: the old schema must read new data; dropping a field it needs breaks it.
        ("FORWARD", [A_INT, B_INT], [A_INT], "b"),
        # FULL: both ways; a changed type breaks both.
        ("FULL", [A_INT], [{"name": "a", "type": "string"}], "a"),
    ],
)
async def test_incompatible_is_409_naming_the_field(
    api: Api, subject: str, level: str, old: list[Any], new: list[Any], named: str
) -> None:
    await api.call("set_compatibility", subject, level)
    await api.call("register_schema", subject, Schema(record(*old), "AVRO"))
    error = await api.fails("register_schema", subject, Schema(record(*new), "AVRO"))
    assert error.http_status_code == 409
    assert error.error_code == 409
    assert "incompatible with an earlier schema" in error.error_message
    assert subject in error.error_message
    assert "/fields/" in error.error_message
    if level != "FULL":  # Confluent names the field of a missing default, not of a type
        assert f"'{named}'" in error.error_message
    assert await api.call("get_versions", subject) == [1]


async def test_the_same_change_passes_under_none(api: Api, subject: str) -> None:
    await api.call("set_compatibility", subject, "NONE")
    await api.call("register_schema", subject, Schema(record(A_INT), "AVRO"))
    await api.call("register_schema", subject, Schema(record(A_INT, B_INT), "AVRO"))
    assert await api.call("get_versions", subject) == [1, 2]


A_INT_DEFAULT = {"name": "a", "type": "int", "default": 0}

# v1 -> v2 -> v3: each step compatible under the level, v3 incompatible with v1.
TRANSITIVE_CHAINS = [
    # v2 drops a; v3 brings a back as a string with a default.
    # v3 reads v2 data (a defaults) but not v1 data (int is not a string).
    ("BACKWARD", [A_INT], [B_INT_DEFAULT], [B_INT_DEFAULT, A_STR_DEFAULT], None),
    # v2 gives a a default; v3 drops a. v2 reads v3 data (a defaults), v1 cannot
    # (its a has no default). Every step holds both ways, so FULL as well.
    ("FORWARD", [A_INT], [A_INT_DEFAULT], [B_INT_DEFAULT], "a"),
    ("FULL", [A_INT], [A_INT_DEFAULT], [B_INT_DEFAULT], "a"),
]


@pytest.mark.parametrize(
    ("level", "v1", "v2", "v3", "named"), TRANSITIVE_CHAINS, ids=[c[0] for c in TRANSITIVE_CHAINS]
)
async def test_transitive_checks_every_earlier_version(
    api: Api,
    subject: str,
    level: str,
    v1: list[Any],
    v2: list[Any],
    v3: list[Any],
    named: str | None,
) -> None:
    plain, transitive = subject, subject + "-tr"
    await api.call("set_compatibility", plain, level)
    await api.call("set_compatibility", transitive, f"{level}_TRANSITIVE")
    for s in (plain, transitive):
        await api.call("register_schema", s, Schema(record(*v1), "AVRO"))
        await api.call("register_schema", s, Schema(record(*v2), "AVRO"))
    # The non-transitive level tests v3 against v2 only: accepted.
    await api.call("register_schema", plain, Schema(record(*v3), "AVRO"))
    error = await api.fails("register_schema", transitive, Schema(record(*v3), "AVRO"))
    assert (error.http_status_code, error.error_code) == (409, 409)
    assert "incompatible with an earlier schema" in error.error_message
    if named is not None:  # a missing default is named; a type mismatch only by path
        assert f"'{named}'" in error.error_message
    assert await api.call("get_versions", plain) == [1, 2, 3]
    assert await api.call("get_versions", transitive) == [1, 2]


async def test_compatibility_test_endpoint_is_verbose(api: Api, subject: str) -> None:
    await api.call("register_schema", subject, Schema(record(A_INT), "AVRO"))
    good = Schema(record(A_INT, B_INT_DEFAULT), "AVRO")
    bad = Schema(record(A_INT, B_INT), "AVRO")
    assert await api.call("test_compatibility", subject, good) is True
    assert await api.call("test_compatibility", subject, bad, verbose=True) is False
    assert await api.call("test_compatibility_all_versions", subject, bad) is False
    assert await api.call("get_versions", subject) == [1]


# -- metadata and rules -------------------------------------------------------------


def governed(owner: str, expr: str) -> Schema:
    rule = Rule(
        name="amountPositive",
        doc="amount must be positive",
        kind=RuleKind.CONDITION,
        mode=RuleMode.WRITE,
        type="CEL",
        tags=[],
        params=None,
        expr=expr,
        on_success=None,
        on_failure="ERROR",
        disabled=False,
    )
    return Schema(
        record({"name": "amount", "type": "int"}),
        "AVRO",
        metadata=Metadata(
            tags=None, properties=MetadataProperties({"owner": owner}), sensitive=None
        ),
        rule_set=RuleSet(migration_rules=None, domain_rules=[rule]),
    )


async def test_metadata_and_rule_set_round_trip(api: Api, subject: str) -> None:
    sent = governed("risk", "message.amount > 0")
    first = await api.call("register_schema_full_response", subject, sent)
    latest = await api.call("get_version", subject, "latest")
    assert sent.metadata is not None and sent.rule_set is not None
    # The client parses both sides the same way (it fills absent lists).
    assert latest.schema.metadata == Metadata.from_dict(sent.metadata.to_dict())
    assert latest.schema.rule_set == RuleSet.from_dict(sent.rule_set.to_dict())
    # On the wire they come back exactly as sent.
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{api.url}/subjects/{subject}/versions/1") as response,
    ):
        raw = await response.json(content_type=None)
    assert raw["metadata"] == sent.metadata.to_dict()
    assert raw["ruleSet"] == sent.rule_set.to_dict()
    by_metadata = await api.call("get_latest_with_metadata", subject, {"owner": "risk"})
    assert by_metadata.version == 1
    assert by_metadata.schema.rule_set == latest.schema.rule_set
    by_id = await api.call("get_schema", first.schema_id)
    assert by_id.rule_set == latest.schema.rule_set
    nothing = await api.fails("get_latest_with_metadata", subject, {"owner": "nobody"})
    assert nothing.http_status_code == 404


async def test_new_rules_make_a_new_version_same_rules_do_not(api: Api, subject: str) -> None:
    first = await api.call("register_schema", subject, governed("risk", "message.amount > 0"))
    fresh = Api(api.kind, api.url)
    try:
        same = await fresh.call("register_schema", subject, governed("risk", "message.amount > 0"))
        # A registration that states no rules keeps the subject's (Confluent's inheritance).
        plain = Schema(record({"name": "amount", "type": "int"}), "AVRO")
        inherited = await fresh.call("register_schema_full_response", subject, plain)
        changed = await fresh.call(
            "register_schema", subject, governed("risk", "message.amount > 10")
        )
        versions = await fresh.call("get_versions", subject)
    finally:
        await fresh.close()
    assert same == first
    assert inherited.schema_id == first
    assert changed != first
    assert versions == [1, 2]


async def test_lookup_finds_plain_schema_of_governed_subject(api: Api, subject: str) -> None:
    registered = await api.call("register_schema", subject, governed("risk", "message.amount > 0"))
    plain = Schema(record({"name": "amount", "type": "int"}), "AVRO")
    found = await api.call("lookup_schema", subject, plain)
    assert found.schema_id == registered
    assert found.version == 1
    missing = await api.fails("lookup_schema", subject, Schema(record(A_INT), "AVRO"))
    assert (missing.http_status_code, missing.error_code) == (404, 40403)


# -- deletes --------------------------------------------------------------------------


async def test_soft_then_permanent_subject_delete(api: Api, subject: str) -> None:
    schema = Schema(record(A_INT), "AVRO")
    schema_id = await api.call("register_schema", subject, schema)
    early = await api.fails("delete_subject", subject, permanent=True)
    assert (early.http_status_code, early.error_code) == (404, 40405)

    assert await api.call("delete_subject", subject) == [1]
    assert subject not in await api.call("get_subjects")
    assert subject in await api.call("get_subjects", deleted=True)
    gone = await api.fails("get_version", subject, "latest")
    assert gone.error_code == 40401
    fresh = Api(api.kind, api.url)
    try:
        hidden = await fresh.fails("lookup_schema", subject, schema)
        assert hidden.error_code == 40401
        found = await fresh.call("lookup_schema", subject, schema, deleted=True)
        assert found.schema_id == schema_id
    finally:
        await fresh.close()
    again = await api.fails("delete_subject", subject)
    assert (again.http_status_code, again.error_code) == (404, 40404)
    # A soft-deleted schema is still readable by id (old messages still decode).
    assert json.loads((await api.call("get_schema", schema_id)).schema_str)["name"] == "Loan"

    assert await api.call("delete_subject", subject, permanent=True) == [1]
    assert subject not in await api.call("get_subjects", deleted=True)
    after = await api.fails("get_versions", subject)
    assert after.error_code == 40401


async def test_version_deletes(api: Api, subject: str) -> None:
    await api.call("register_schema", subject, Schema(record(A_INT), "AVRO"))
    await api.call("register_schema", subject, Schema(record(A_INT, B_INT_DEFAULT), "AVRO"))
    early = await api.fails("delete_version", subject, 2, permanent=True)
    assert early.error_code == 40407
    assert await api.call("delete_version", subject, 2) == 2
    assert await api.call("get_versions", subject) == [1]
    assert await api.call("get_versions", subject, deleted=True) == [1, 2]
    twice = await api.fails("delete_version", subject, 2)
    assert twice.error_code == 40406
    assert await api.call("delete_version", subject, 2, permanent=True) == 2
    missing = await api.fails("delete_version", subject, 7)
    assert (missing.http_status_code, missing.error_code) == (404, 40402)


# -- config ---------------------------------------------------------------------------


async def test_subject_config_set_get_delete(api: Api, subject: str) -> None:
    await api.call("set_compatibility", subject, "FULL_TRANSITIVE")
    assert await api.call("get_compatibility", subject) == "FULL_TRANSITIVE"
    assert await api.call("get_compatibility") in {
        "BACKWARD",
        "FORWARD",
        "FULL",
        "NONE",
        "BACKWARD_TRANSITIVE",
        "FORWARD_TRANSITIVE",
        "FULL_TRANSITIVE",
    }
    await api.call("delete_config", subject)
    unset = await api.fails("get_compatibility", subject)
    assert (unset.http_status_code, unset.error_code) == (404, 40408)
    bad = await api.fails("set_compatibility", subject, "SIDEWAYS")
    assert (bad.http_status_code, bad.error_code) == (422, 42203)


# -- bad input -------------------------------------------------------------------------


async def test_malformed_schema_is_422_with_a_clear_message(api: Api, subject: str) -> None:
    wrong_type = record({"name": "a", "type": "integer"})
    error = await api.fails("register_schema", subject, Schema(wrong_type, "AVRO"))
    assert (error.http_status_code, error.error_code) == (422, 42201)
    assert "integer" in error.error_message
    bad_default = record({"name": "a", "type": "int", "default": "x"})
    error = await api.fails("register_schema", subject, Schema(bad_default, "AVRO"))
    assert (error.http_status_code, error.error_code) == (422, 42201)
    not_json = await api.fails("register_schema", subject, Schema("{nope", "AVRO"))
    assert not_json.error_code == 42201


async def test_unknown_subject_and_version(api: Api, subject: str) -> None:
    unknown = await api.fails("get_version", subject, 1)
    assert (unknown.http_status_code, unknown.error_code) == (404, 40401)
    await api.call("register_schema", subject, Schema(record(A_INT), "AVRO"))
    missing = await api.fails("get_version", subject, 9)
    assert (missing.http_status_code, missing.error_code) == (404, 40402)
    no_schema = await api.fails("get_schema", 2_000_000_000)
    assert (no_schema.http_status_code, no_schema.error_code) == (404, 40403)


async def test_raw_http_bad_bodies_never_crash(registry_url: str, subject: str) -> None:
    headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
    versions = f"{registry_url}/subjects/{subject}/versions"
    async with aiohttp.ClientSession() as http:
        async with http.post(versions, data=b"{not json", headers=headers) as not_json:
            assert not_json.status == 400
            assert isinstance((await not_json.json(content_type=None))["error_code"], int)
        async with http.post(versions, data=b"", headers=headers) as empty:
            assert empty.status in {400, 422}
        async with http.post(versions, json=["schema"]) as wrong_shape:
            assert wrong_shape.status in {400, 422}
        async with http.get(f"{versions}/abc") as bad_version:
            assert bad_version.status in {404, 422}
        async with http.get(f"{registry_url}/subjects") as subjects:
            assert subjects.status == 200
            assert subjects.headers["Content-Type"].startswith("application/vnd.schemaregistry")


# -- restart ---------------------------------------------------------------------------


@pytest.mark.skipif(bool(EXTERNAL_URL), reason="restarts only a registry this suite started")
async def test_ids_and_versions_survive_a_restart(stack: Settings) -> None:
    topic = f"_schemas_{uuid.uuid4().hex}"
    first = await start_registry(stack.bootstrap_servers, 0, topic)
    try:
        client = AsyncSchemaRegistryClient({"url": first.url})
        one = await client.register_schema("r-value", Schema(record(A_INT), "AVRO"))
        two = await client.register_schema("r-value", Schema(record(A_INT, B_INT_DEFAULT), "AVRO"))
        other = await client.register_schema("q-value", Schema(record(B_INT), "AVRO"))
        await client.set_compatibility("q-value", "NONE")
        await client.delete_subject("q-value")
        await client.aclose()
    finally:
        await first.stop()
    second = await start_registry(stack.bootstrap_servers, 0, topic)
    try:
        client = AsyncSchemaRegistryClient({"url": second.url})
        assert await client.get_versions("r-value") == [1, 2]
        assert (await client.get_version("r-value", 2)).schema_id == two
        again = await client.register_schema("r-value", Schema(record(A_INT), "AVRO"))
        assert again == one
        assert await client.get_subjects() == ["r-value"]
        # A new schema never takes an id already given, even a deleted subject's.
        new = await client.register_schema("n-value", Schema(record(A_STR_DEFAULT), "AVRO"))
        assert new not in {one, two, other}
        assert (await client.register_schema("q2-value", Schema(record(B_INT), "AVRO"))) == other
        await client.aclose()
    finally:
        await second.stop()
