"""The HTTP layer over an in-memory log: content type, error bodies, never a crash."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from flightrec.testing.registry import build_app
from flightrec.testing.registry.service import RegistryService
from flightrec.testing.registry.storage import MemoryLog

CT = "application/vnd.schemaregistry.v1+json"
SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def http() -> AsyncIterator[Client]:
    service = RegistryService(MemoryLog())
    await service.start()
    client: Client = TestClient(TestServer(build_app(service)))
    await client.start_server()
    yield client
    await client.close()


async def test_register_then_read_back(http: Client) -> None:
    posted = await http.post(
        "/subjects/s/versions", data=json.dumps({"schema": SCHEMA}), headers={"Content-Type": CT}
    )
    assert posted.status == 200
    assert posted.headers["Content-Type"].startswith(CT)
    assert (await posted.json(content_type=None))["id"] == 1
    latest = await (await http.get("/subjects/s/versions/latest")).json(content_type=None)
    assert latest["schema"] == SCHEMA
    assert "schemaType" not in latest  # Avro is implied, as Confluent answers
    raw = await http.get("/subjects/s/versions/1/schema")
    assert await raw.text() == SCHEMA
    by_id = await (await http.get("/schemas/ids/1")).json(content_type=None)
    assert by_id["schema"] == SCHEMA
    by_guid = await (await http.get(f"/schemas/guids/{by_id['guid']}")).json(content_type=None)
    assert by_guid["id"] == 1
    assert await (await http.get("/schemas/ids/1/subjects")).json(content_type=None) == ["s"]
    versions = await (await http.get("/schemas/ids/1/versions")).json(content_type=None)
    assert versions == [{"subject": "s", "version": 1}]


@pytest.mark.parametrize(
    ("method", "path", "data", "status", "code"),
    [
        ("POST", "/subjects/s/versions", b"{oops", 400, 400),
        ("POST", "/subjects/s/versions", b"\xff\xfe", 400, 400),
        ("POST", "/subjects/s/versions", b'{"schema": "{\\"type\\": \\"nope\\"}"}', 422, 42201),
        ("GET", "/subjects/missing/versions", None, 404, 40401),
        ("GET", "/subjects/missing/versions/abc", None, 422, 42202),
        ("GET", "/schemas/ids/77", None, 404, 40403),
        ("GET", "/schemas/ids/x", None, 404, 40403),
        ("PUT", "/config", b'{"compatibility": "SOMETIMES"}', 422, 42203),
        ("PUT", "/config", b"[1]", 422, 42203),
        ("GET", "/config/s", None, 404, 40408),
        ("GET", "/no/such/path", None, 404, 404),
    ],
)
async def test_errors_are_confluent_bodies(
    http: Client, method: str, path: str, data: bytes | None, status: int, code: int
) -> None:
    response = await http.request(method, path, data=data, headers={"Content-Type": CT})
    assert response.status == status
    assert response.headers["Content-Type"].startswith(CT)
    payload = await response.json(content_type=None)
    assert payload["error_code"] == code
    assert isinstance(payload["message"], str) and payload["message"]
    assert (await http.get("/subjects")).status == 200


async def test_config_levels_and_default(http: Client) -> None:
    assert await (await http.get("/config")).json(content_type=None) == {
        "compatibilityLevel": "BACKWARD"
    }
    put = await http.put("/config/s", data=b'{"compatibility": "forward_transitive"}')
    assert await put.json(content_type=None) == {"compatibility": "FORWARD_TRANSITIVE"}
    got = await (await http.get("/config/s")).json(content_type=None)
    assert got["compatibilityLevel"] == "FORWARD_TRANSITIVE"
    fallback = await (await http.get("/config/t?defaultToGlobal=true")).json(content_type=None)
    assert fallback["compatibilityLevel"] == "BACKWARD"
    deleted = await (await http.delete("/config/s")).json(content_type=None)
    assert deleted["compatibilityLevel"] == "FORWARD_TRANSITIVE"
    assert (await http.get("/config/s")).status == 404


async def test_compatibility_endpoint(http: Client) -> None:
    url = "/compatibility/subjects/s/versions/latest?verbose=true"
    new = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]})
    first = await http.post(url, data=json.dumps({"schema": new}))
    assert await first.json(content_type=None) == {"is_compatible": True, "messages": []}
    await http.post("/subjects/s/versions", data=json.dumps({"schema": SCHEMA}))
    verdict = await (await http.post(url, data=json.dumps({"schema": new}))).json(content_type=None)
    assert verdict["is_compatible"] is False
    assert any("field 'a'" in m for m in verdict["messages"])
    missing = await http.post(
        "/compatibility/subjects/s/versions/9", data=json.dumps({"schema": new})
    )
    assert (await missing.json(content_type=None))["error_code"] == 40402
