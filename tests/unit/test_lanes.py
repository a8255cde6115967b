"""``PartitionLanes``: order per partition, bounded concurrency across partitions,
and a failure that stops the lanes loudly instead of skipping or stalling."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from dataclasses import dataclass

import pytest

from flightrec.agents.lanes import PartitionLanes
from flightrec.contracts.errors import RecorderError


@dataclass(frozen=True)
class Item:
    """A stand-in for a Faust event: where it came from."""

    partition: int
    offset: int


def describe(item: Item) -> str:
    return f"loan.applications/{item.partition}@{item.offset}"


class Probe:
    """Processes items with random delays and records what happened, in order."""

    def __init__(self, rng: random.Random, max_delay_s: float = 0.003) -> None:
        self._rng = rng
        self._max_delay_s = max_delay_s
        self.processed: list[Item] = []
        self.acked: list[Item] = []
        self.running = 0
        self.peak = 0
        self.running_per_partition: dict[int, int] = defaultdict(int)
        self.peak_per_partition = 0
        self.fatal: list[BaseException] = []

    async def process(self, item: Item) -> None:
        self.running += 1
        self.running_per_partition[item.partition] += 1
        self.peak = max(self.peak, self.running)
        self.peak_per_partition = max(
            self.peak_per_partition, self.running_per_partition[item.partition]
        )
        try:
            await asyncio.sleep(self._rng.random() * self._max_delay_s)
            self.processed.append(item)
        finally:
            self.running -= 1
            self.running_per_partition[item.partition] -= 1

    async def ack(self, item: Item) -> None:
        assert item in self.processed  # acked only once its processing is done
        self.acked.append(item)

    async def on_fatal(self, exc: BaseException) -> None:
        self.fatal.append(exc)


def by_partition(items: list[Item]) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = defaultdict(list)
    for item in items:
        offsets[item.partition].append(item.offset)
    return dict(offsets)


def interleaved(rng: random.Random, partitions: int, per_partition: int) -> list[Item]:
    """Every partition's offsets in order, partitions shuffled among each other."""
    pending = {p: list(range(per_partition)) for p in range(partitions)}
    items: list[Item] = []
    while pending:
        partition = rng.choice(sorted(pending))
        items.append(Item(partition, pending[partition].pop(0)))
        if not pending[partition]:
            del pending[partition]
    return items


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_lanes_keep_partition_order_and_bound_concurrency(seed: int) -> None:
    rng = random.Random(seed)
    concurrency, partitions, per_partition = 3, 6, 25
    probe = Probe(rng)
    lanes: PartitionLanes[Item] = PartitionLanes(
        probe.process,
        probe.ack,
        concurrency=concurrency,
        capacity=4,  # small, so the feeding loop also meets backpressure
        on_fatal=probe.on_fatal,
        describe=describe,
    )
    items = interleaved(rng, partitions, per_partition)
    for item in items:
        await lanes.submit(item.partition, item)
    await lanes.drain(timeout_s=10.0)

    expected = {p: list(range(per_partition)) for p in range(partitions)}
    assert by_partition(items) == expected  # the input really is ordered per partition
    assert by_partition(probe.processed) == expected
    assert by_partition(probe.acked) == expected
    assert probe.peak_per_partition == 1  # a partition never runs two items at once
    assert probe.peak == concurrency  # lanes did run in parallel, up to the limit
    # Partitions finished out of submission order: the lanes really interleaved.
    assert probe.processed != items
    assert probe.fatal == [] and lanes.failure is None


async def test_a_lane_that_cannot_settle_stops_loudly(caplog: pytest.LogCaptureFixture) -> None:
    probe = Probe(random.Random(7), max_delay_s=0.001)
    poison = Item(1, 3)

    async def process(item: Item) -> None:
        if item == poison:
            raise RecorderError("broker did not confirm delivery", topic="loan.applications.dlq")
        await probe.process(item)

    lanes: PartitionLanes[Item] = PartitionLanes(
        process, probe.ack, concurrency=2, on_fatal=probe.on_fatal, describe=describe
    )
    items = [Item(p, o) for o in range(6) for p in (0, 1)]
    with caplog.at_level(logging.CRITICAL, logger="flightrec.agents.lanes"):
        with pytest.raises(RecorderError) as raised:
            for item in items:
                await lanes.submit(item.partition, item)
                await asyncio.sleep(0.01)  # the lane settles each item before the next
        await asyncio.wait_for(lanes.drain(timeout_s=5.0), 1.0)  # a dead lane does not hang it

    # Partition 1 stopped at the poison: it and everything after it stay unacked.
    assert by_partition(probe.acked)[1] == [0, 1, 2]
    assert all(item.offset < 3 for item in probe.processed if item.partition == 1)
    assert poison not in probe.acked
    # Partition 0 was settled in order up to where the feed stopped.
    assert by_partition(probe.acked)[0] == list(range(len(by_partition(probe.acked)[0])))
    # The worker was told once, and the caller hears the same failure.
    (fatal,) = probe.fatal
    assert raised.value is fatal is lanes.failure
    assert isinstance(fatal, RecorderError) and fatal.retryable
    assert fatal.context["item"] == "loan.applications/1@3"
    assert isinstance(fatal.__cause__, RecorderError)
    (record,) = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "loan.applications/1@3" in record.getMessage()
    assert "unacked" in record.getMessage() and record.exc_info is not None


async def test_a_feed_blocked_on_a_full_lane_hears_of_its_failure() -> None:
    release = asyncio.Event()
    acked: list[Item] = []
    fatal: list[BaseException] = []

    async def process(item: Item) -> None:
        await release.wait()
        raise RecorderError("broker did not confirm delivery")

    async def ack(item: Item) -> None:
        acked.append(item)

    async def on_fatal(exc: BaseException) -> None:
        fatal.append(exc)

    lanes: PartitionLanes[Item] = PartitionLanes(
        process, ack, concurrency=1, capacity=1, on_fatal=on_fatal, describe=describe
    )
    await lanes.submit(0, Item(0, 0))
    await asyncio.sleep(0.01)  # the lane took offset 0 and waits in process()
    await lanes.submit(0, Item(0, 1))  # fills the queue
    blocked = asyncio.create_task(lanes.submit(0, Item(0, 2)))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # backpressure: no room for offset 2
    release.set()
    # The very submit that waited learns that its item will never be processed.
    with pytest.raises(RecorderError):
        await asyncio.wait_for(blocked, 1.0)
    await asyncio.wait_for(lanes.drain(timeout_s=5.0), 1.0)
    assert acked == [] and len(fatal) == 1


async def test_a_failing_stop_hook_does_not_hide_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def process(item: Item) -> None:
        raise RecorderError("broker did not confirm delivery")

    async def ack(item: Item) -> None:
        raise AssertionError("nothing may be acked")

    async def on_fatal(exc: BaseException) -> None:
        raise RuntimeError("stop hook broke")

    lanes: PartitionLanes[Item] = PartitionLanes(process, ack, concurrency=1, on_fatal=on_fatal)
    with caplog.at_level(logging.ERROR, logger="flightrec.agents.lanes"):
        await lanes.submit(0, Item(0, 0))
        await asyncio.sleep(0.02)
        with pytest.raises(RecorderError):
            await lanes.submit(0, Item(0, 1))
        await lanes.drain(timeout_s=1.0)
    assert any("on_fatal hook failed" in r.getMessage() for r in caplog.records)
