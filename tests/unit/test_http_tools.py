"""HttpClient over real HTTP: host allow-list, status mapping, timeouts, lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from flightrec.contracts.errors import ConfigError, ToolHTTPError, ToolTimeoutError
from flightrec.contracts.settings import Settings
from flightrec.tools.http import HttpClient


class Hits:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, Hits]]:
    """A small HTTP server that counts requests: 200, 404, 503, a redirect, slow."""
    hits = Hits()

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.count += 1
        name = request.match_info["name"]
        if name == "ok":
            return web.json_response(
                {"echo": await request.json() if request.can_read_body else None}
            )
        if name == "missing":
            raise web.HTTPNotFound()
        if name == "down":
            raise web.HTTPServiceUnavailable()
        if name == "redirect":
            raise web.HTTPFound("http://example.com/")
        if name == "text":
            return web.Response(text="not json")
        raise web.HTTPBadRequest()

    app = web.Application()
    app.router.add_route("*", "/{name}", handle)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield port, hits
    finally:
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    settings = Settings(http_allowed_hosts=("127.0.0.1",), tool_timeout_s=2.0)
    async with HttpClient(settings) as http:
        yield http


async def test_post_json_round_trip(server: tuple[int, Hits], client: HttpClient) -> None:
    port, hits = server
    body = await client.post_json(f"http://127.0.0.1:{port}/ok", {"a": 1})
    assert body == {"echo": {"a": 1}}
    assert hits.count == 1


async def test_host_outside_allow_list_sends_nothing(
    server: tuple[int, Hits], client: HttpClient
) -> None:
    port, hits = server
    # "localhost" reaches the same server, but only 127.0.0.1 is allow-listed.
    with pytest.raises(ToolHTTPError) as info:
        await client.get_json(f"http://localhost:{port}/ok")
    assert info.value.retryable is False
    assert info.value.context["host"] == "localhost"
    with pytest.raises(ToolHTTPError):
        await client.get_json(f"ftp://127.0.0.1:{port}/ok")
    assert hits.count == 0


async def test_5xx_is_retryable_and_4xx_terminal(
    server: tuple[int, Hits], client: HttpClient
) -> None:
    port, _ = server
    with pytest.raises(ToolHTTPError) as down:
        await client.get_json(f"http://127.0.0.1:{port}/down")
    assert down.value.retryable is True and down.value.context["status"] == 503
    with pytest.raises(ToolHTTPError) as missing:
        await client.get_json(f"http://127.0.0.1:{port}/missing")
    assert missing.value.retryable is False and missing.value.context["status"] == 404


async def test_redirects_are_not_followed(server: tuple[int, Hits], client: HttpClient) -> None:
    port, hits = server
    with pytest.raises(ToolHTTPError) as info:
        await client.get_json(f"http://127.0.0.1:{port}/redirect")
    assert info.value.context["status"] == 302
    assert hits.count == 1


async def test_non_json_body_is_an_error(server: tuple[int, Hits], client: HttpClient) -> None:
    port, _ = server
    with pytest.raises(ToolHTTPError, match="not JSON"):
        await client.get_json(f"http://127.0.0.1:{port}/text")


async def test_connection_refused_is_retryable(client: HttpClient) -> None:
    # Port 1 on loopback: nothing listens there.
    with pytest.raises(ToolHTTPError) as info:
        await client.get_json("http://127.0.0.1:1/ok")
    assert info.value.retryable is True


async def test_client_timeout_becomes_tool_timeout() -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with HttpClient(Settings(), timeout_s=0.2) as http:
            with pytest.raises(ToolTimeoutError) as info:
                await http.get_json(f"http://127.0.0.1:{port}/slow")
        assert info.value.retryable is True
    finally:
        await runner.cleanup()


async def test_use_before_start_is_a_config_error() -> None:
    http = HttpClient(Settings())
    with pytest.raises(ConfigError):
        await http.get_json("http://127.0.0.1:1/ok")
    await http.start()
    await http.close()
    await http.close()  # idempotent
    with pytest.raises(ConfigError):
        HttpClient(Settings(tool_timeout_s=0))
