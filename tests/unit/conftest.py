"""Fixtures shared by unit tests that run the loan agent against the bureau simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flightrec.contracts.settings import Settings
from flightrec.testing.bureau import start_bureau
from flightrec.tools.http import HttpClient


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
