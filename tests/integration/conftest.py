"""Fixtures of the integration tests besides the stack's (tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from flightrec.contracts.codec import Codec
from flightrec.contracts.governance import apply_contracts
from flightrec.contracts.settings import Settings


@pytest.fixture
async def codec(settings: Settings) -> AsyncIterator[Codec]:
    """A started codec for CoT events, the contracts applied under ``settings``
    (a module that needs other contracts or a DLQ producer defines its own)."""
    await asyncio.to_thread(apply_contracts, settings)
    codec = Codec(settings, contracts=("cot_event",))
    await codec.start()
    yield codec
    await codec.close()
