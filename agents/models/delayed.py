"""``DelayedModel``: a benchmark and testing knob that gives any model a latency.

Every call sleeps a fixed time, then asks the wrapped model. With the offline
``PolicyModel`` behind it, a worker behaves like one calling a remote model that
answers in that time, without a network or an endpoint: ``flightrec bench
runtime`` measures throughput at a model latency this way. The worker uses it
only when ``Settings.model_latency_ms`` is set (``FLIGHTREC_MODEL_LATENCY_MS``),
which nothing but the benchmark sets.
"""

from __future__ import annotations

import asyncio

from flightrec.agents.model import ClosableModel, ModelInfo, ModelRequest, ModelTurn

__all__ = ["DelayedModel"]


class DelayedModel:
    """``inner``, answering each call ``latency_s`` later."""

    def __init__(self, inner: ClosableModel, latency_s: float) -> None:
        self._inner = inner
        self._latency_s = max(0.0, latency_s)

    @property
    def info(self) -> ModelInfo:
        """The wrapped model's: the delay changes when it answers, not what."""
        return self._inner.info

    async def next_step(self, request: ModelRequest) -> ModelTurn:
        """Sleep the latency, then the wrapped model's turn."""
        await asyncio.sleep(self._latency_s)
        return await self._inner.next_step(request)

    async def aclose(self) -> None:
        """Close the wrapped model."""
        await self._inner.aclose()
