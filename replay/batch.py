"""Batches of replays: bounded concurrency, progress, and publication to ``agent.replays``.

Results go to ``settings.topics.replays`` only (governed Avro through the codec,
key = trace id, ``replay_of`` = trace id). This module never produces to the
CoT or decision topics: :class:`ReplaySink` refuses them even if misconfigured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from flightrec.contracts.errors import ConfigError
from flightrec.contracts.events import ReplayResult
from flightrec.contracts.settings import Settings
from flightrec.kafka.producer import ConfirmedProducer
from flightrec.replay.reader import CotReader, Segment

__all__ = ["ReplayCodec", "ReplaySink", "read_replay_results", "run_bounded"]

T = TypeVar("T")
R = TypeVar("R")


class ReplayCodec(Protocol):
    """The codec operations replay results need."""

    async def encode_replay(self, result: ReplayResult) -> bytes: ...

    async def decode_replay(self, data: bytes) -> ReplayResult: ...


async def run_bounded(
    items: Sequence[T],
    fn: Callable[[T], Awaitable[R]],
    *,
    concurrency: int,
    on_done: Callable[[int, int], None] | None = None,
) -> list[R]:
    """``fn`` over ``items`` with at most ``concurrency`` in flight; results in input order.

    A failure cancels the rest (TaskGroup), so no task is left running.
    """
    slots = asyncio.Semaphore(max(1, concurrency))
    results: list[R | None] = [None] * len(items)
    done = 0

    async def one(index: int, item: T) -> None:
        nonlocal done
        async with slots:
            results[index] = await fn(item)
        done += 1
        if on_done is not None:
            on_done(done, len(items))

    async with asyncio.TaskGroup() as group:
        for index, item in enumerate(items):
            group.create_task(one(index, item))
    return [r for r in results if r is not None]


class ReplaySink:
    """Publishes ``ReplayResult`` records to the replays topic and waits for confirmation."""

    def __init__(self, settings: Settings, codec: ReplayCodec, producer: ConfirmedProducer) -> None:
        topic = settings.topics.replays
        if topic in {settings.topics.cot, settings.topics.decisions}:
            raise ConfigError(
                "replay results must not go to the CoT or decision topic", topic=topic
            )
        self.topic = topic
        self._codec = codec
        self._producer = producer

    async def publish(self, result: ReplayResult) -> None:
        """Encode (rules run) and produce one result; returns once the broker confirmed it."""
        payload = await self._codec.encode_replay(result)
        await self._producer.send_and_wait(self.topic, payload, key=result.replay_of)


async def read_replay_results(
    settings: Settings, codec: ReplayCodec, trace_ids: frozenset[str]
) -> list[ReplayResult]:
    """Replay results recorded for ``trace_ids`` (scans the replays topic, filters by key)."""
    async with CotReader(
        settings, None, topic=settings.topics.replays, chain_verifier=None
    ) as reader:
        segments: list[Segment] = await reader.scan_segments()
        raw = await reader.read_raw(segments, keys=trace_ids)
    results = []
    for record in raw:
        if record.value is not None:
            results.append(await codec.decode_replay(record.value))
    return sorted(results, key=lambda r: r.ts)
