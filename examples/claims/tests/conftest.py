"""Fixtures of the claims example: the policy simulator on a loopback port and
settings and an HTTP client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flightrec.contracts.settings import Settings
from flightrec.tools.http import HttpClient
from flightrec_claims.simulator import start_simulator
from flightrec_claims.tools import CLAIMS_URL_ENV

from claims_support import ClaimsEnv


@pytest.fixture
async def claims_env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ClaimsEnv]:
    """The simulator on a free port of 127.0.0.1, named by ``FLIGHTREC_CLAIMS_URL``."""
    runner = await start_simulator(port=0)
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    monkeypatch.setenv(CLAIMS_URL_ENV, url)
    settings = Settings(tool_timeout_s=2.0)
    try:
        async with HttpClient(settings) as http:
            yield ClaimsEnv(url=url, settings=settings, http=http)
    finally:
        await runner.cleanup()
