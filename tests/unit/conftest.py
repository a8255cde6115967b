"""Fixtures shared by unit tests: only flightrec's own agents installed, the bureau
simulator for the loan agent, the embedded schema registry served over HTTP, a
codec on the offline registry, a broker address nobody answers, and two record
signing keys."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import EntryPoints, entry_points
from typing import Any

import pytest
from aiohttp import web

from flightrec.agents import registry
from flightrec.agents.registry import ENTRY_POINT_GROUP
from flightrec.contracts.codec import Codec
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing import RecordSigner
from flightrec.testing.bureau import start_bureau
from flightrec.testing.offline import offline_registry
from flightrec.testing.registry import build_app
from flightrec.testing.registry.service import RegistryService
from flightrec.testing.registry.storage import MemoryLog
from flightrec.tools.http import HttpClient


@pytest.fixture(autouse=True)
def only_flightrec_agents(monkeypatch: pytest.MonkeyPatch) -> None:
    """Agent discovery sees flightrec's own entry points only, whatever else the
    environment installed (the claims example is, by `make`): unit tests do not
    depend on what is installed beside them."""
    own = EntryPoints(
        e for e in entry_points(group=ENTRY_POINT_GROUP) if e.value.startswith("flightrec.")
    )

    def flightrec_only(*, group: str) -> EntryPoints:
        return own if group == ENTRY_POINT_GROUP else entry_points(group=group)

    monkeypatch.setattr(registry, "entry_points", flightrec_only)


@pytest.fixture
async def env() -> AsyncIterator[tuple[Settings, HttpClient]]:
    """Settings pointing at an in-process bureau (slow answers take 2 s, tools time out at
    0.5 s) and an open HTTP client."""
    bureau = await start_bureau(port=0, slow_s=2.0)
    settings = Settings(bureau_url=f"http://127.0.0.1:{bureau.addresses[0][1]}", tool_timeout_s=0.5)
    try:
        async with HttpClient(settings) as http:
            yield settings, http
    finally:
        await bureau.cleanup()


@pytest.fixture
async def offline_codec() -> Codec:
    """A started codec whose schemas come from the offline registry (no network)."""
    settings = Settings()
    codec = Codec(settings, offline_registry(settings))
    await codec.start()
    return codec


@pytest.fixture
def http_registry() -> Iterator[Settings]:
    """Settings pointing at a fresh in-memory embedded registry served over HTTP.

    The registry runs on an event loop in a thread of its own, so the blocking
    ``SchemaRegistryClient`` can call it from the test.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[web.AppRunner, RegistryService, int]:
        service = RegistryService(MemoryLog())
        await service.start()
        runner = web.AppRunner(build_app(service), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, service, int(runner.addresses[0][1])

    async def stop(runner: web.AppRunner, service: RegistryService) -> None:
        await runner.cleanup()
        await service.stop()

    runner, service, port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield Settings(schema_registry_url=f"http://127.0.0.1:{port}")
    finally:
        asyncio.run_coroutine_threadsafe(stop(runner, service), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture
def unreachable_broker() -> Settings:
    """Settings whose bootstrap server is a loopback port nobody listens on: the
    real librdkafka client runs, and no broker ever answers it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return Settings(bootstrap_servers=f"127.0.0.1:{port}")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name lookup or connection attempt is recorded and refused."""
    attempts: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args))
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture(scope="module")
def signer() -> RecordSigner:
    """A record signing key (a fresh one per test module)."""
    return RecordSigner.generate()


@pytest.fixture(scope="module")
def other() -> RecordSigner:
    """Another record signing key, not ``signer``."""
    return RecordSigner.generate()
