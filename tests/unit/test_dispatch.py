"""``KeyedDispatcher``: order per key, concurrency across keys, acks in offset
order and never past an unsettled record, pause/resume, the failure policy,
revoke with fencing, and drain."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flightrec.agents.dispatch import Fence, KeyedDispatcher
from flightrec.contracts.errors import FencedError, RecorderError


@dataclass(frozen=True)
class Item:
    """A stand-in for a Faust event."""

    partition: int
    offset: int
    key: bytes | None


def describe(item: Item) -> str:
    return f"loan.applications/{item.partition}@{item.offset}"


class Probe:
    """Runs each item until its gate opens, and records what happened."""

    def __init__(
        self,
        *,
        max_in_flight: int = 100,
        partition_cap: int = 1000,
        failing: frozenset[Item] = frozenset(),
    ) -> None:
        self.gates: dict[Item, asyncio.Event] = defaultdict(asyncio.Event)
        self.failing = failing
        self.submitted: list[Item] = []
        self.started: list[Item] = []
        self.finished: list[Item] = []
        self.cancelled: list[Item] = []
        self.acked: list[Item] = []
        self.fences: dict[Item, Fence] = {}
        self.calls: list[tuple[str, int]] = []  # pause / resume, in order
        self.positions: list[int | None] = []  # where each resume reads from
        self.fatal: list[BaseException] = []
        self.running = 0
        self.peak = 0
        self.running_keys: set[tuple[int, bytes]] = set()
        self.dispatcher: KeyedDispatcher[Item] = KeyedDispatcher(
            self.process,
            self.ack,
            max_in_flight=max_in_flight,
            partition_cap=partition_cap,
            pause=lambda tp: self.calls.append(("pause", tp)),
            resume=self.resume,
            on_fatal=self.on_fatal,
            describe=describe,
        )

    def resume(self, tp: int, position: int | None) -> None:
        self.calls.append(("resume", tp))
        self.positions.append(position)

    def submit(self, *items: Item) -> None:
        for item in items:
            assert self.dispatcher.submit(item.partition, item.offset, item.key, item)
            self.submitted.append(item)

    async def process(self, item: Item, fence: Fence) -> None:
        lane = (item.partition, item.key)
        if item.key is not None:
            assert lane not in self.running_keys, "a key ran two items at once"
            self.running_keys.add((item.partition, item.key))
        self.started.append(item)
        self.fences[item] = fence
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.gates[item].wait()
            if item in self.failing:
                raise RecorderError("broker did not confirm delivery", topic="loan.dlq")
            self.finished.append(item)
        except asyncio.CancelledError:
            self.cancelled.append(item)
            raise
        finally:
            self.running -= 1
            if item.key is not None:
                self.running_keys.discard((item.partition, item.key))

    async def ack(self, item: Item) -> None:
        # Nothing is acked past an unsettled offset: everything of its
        # partition up to and including it has finished.
        behind = [
            s for s in self.submitted if s.partition == item.partition and s.offset <= item.offset
        ]
        assert all(s in self.finished for s in behind), f"{item} acked past an unsettled one"
        self.acked.append(item)

    async def on_fatal(self, exc: BaseException) -> None:
        self.fatal.append(exc)

    def release(self, *items: Item) -> None:
        for item in items:
            self.gates[item].set()

    def of(self, items: list[Item], partition: int, key: bytes | None = None) -> list[int]:
        return [
            i.offset for i in items if i.partition == partition and (key is None or i.key == key)
        ]


async def settle() -> None:
    """Let every task that can run, run (a handful of loop turns)."""
    for _ in range(30):
        await asyncio.sleep(0)


# -- property --------------------------------------------------------------


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[Item], list[int], Item | None, int]:
    """Items on two partitions (offsets with gaps, keys including None), the
    order their runs are released in, maybe one that fails, and max_in_flight."""
    next_offset = {0: draw(st.integers(0, 50)), 1: draw(st.integers(0, 50))}
    items: list[Item] = []
    for _ in range(draw(st.integers(1, 25))):
        partition = draw(st.sampled_from([0, 1]))
        key = draw(st.sampled_from([b"a", b"b", b"c", None]))
        items.append(Item(partition, next_offset[partition], key))
        next_offset[partition] += draw(st.integers(1, 3))
    order = draw(st.permutations(range(len(items))))
    failing = draw(st.none() | st.sampled_from(items))
    return items, order, failing, draw(st.integers(1, 4))


@settings(max_examples=200, deadline=None)
@given(workloads())
def test_order_per_key_and_acks_in_offset_order_whatever_finishes_first(
    workload: tuple[list[Item], list[int], Item | None, int],
) -> None:
    items, order, failing, max_in_flight = workload

    async def scenario() -> Probe:
        probe = Probe(
            max_in_flight=max_in_flight,
            failing=frozenset() if failing is None else frozenset({failing}),
        )
        probe.dispatcher.assign([0, 1])
        probe.submit(*items)
        for index in order:
            probe.release(items[index])
            await settle()
        await asyncio.wait_for(probe.dispatcher.drain(timeout_s=5.0), 6.0)
        return probe

    probe = asyncio.run(scenario())
    assert probe.peak <= max_in_flight
    for partition in (0, 1):
        submitted = probe.of(items, partition)
        acked = probe.of(probe.acked, partition)
        # Acks: in offset order, no dispatched offset skipped.
        assert acked == submitted[: len(acked)]
        for key in (b"a", b"b", b"c"):
            wanted = probe.of(items, partition, key)
            started = probe.of(probe.started, partition, key)
            assert started == wanted[: len(started)]  # a key's items start in input order
    if failing is None:
        assert sorted(probe.acked, key=items.index) == items  # everything, once
        assert len(probe.finished) == len(items) and probe.fatal == []
    else:
        assert len(probe.fatal) == 1 and probe.dispatcher.failure is probe.fatal[0]
        assert not any(
            i.partition == failing.partition and i.offset >= failing.offset for i in probe.acked
        )
        if failing.key is not None:
            later = [i for i in items if i.key == failing.key and i.offset > failing.offset]
            later = [i for i in later if i.partition == failing.partition]
            assert not set(later) & set(probe.started)  # its key stopped


# -- examples --------------------------------------------------------------


async def test_a_slow_key_does_not_block_other_keys() -> None:
    probe = Probe()
    probe.dispatcher.assign([0])
    slow, *fast = [Item(0, 0, b"slow"), Item(0, 1, b"b"), Item(0, 2, b"c"), Item(0, 3, b"b")]
    probe.submit(slow, *fast)
    probe.release(*fast)
    await settle()
    assert probe.finished == fast  # they overtook the slow one
    assert probe.acked == []  # but nothing is acked past offset 0
    probe.release(slow)
    await settle()
    assert probe.acked == [slow, *fast]


async def test_a_keys_second_event_waits_for_its_first() -> None:
    probe = Probe()
    probe.dispatcher.assign([0])
    first, second = Item(0, 0, b"subject"), Item(0, 1, b"subject")
    probe.submit(first, second)
    probe.release(second)  # the second would be quick
    await settle()
    assert probe.started == [first]
    probe.release(first)
    await settle()
    assert probe.finished == [first, second] and probe.acked == [first, second]


async def test_max_in_flight_is_never_exceeded() -> None:
    probe = Probe(max_in_flight=3)
    probe.dispatcher.assign([0])
    items = [Item(0, offset, str(offset).encode()) for offset in range(12)]
    probe.submit(*items)
    await settle()
    assert probe.running == 3  # the rest wait queued
    assert probe.dispatcher.stats().queued == {0: 9}
    for item in items:
        probe.release(item)
        await settle()
    assert probe.peak == 3 and probe.acked == items


async def test_pause_at_the_cap_and_resume_at_half_once_per_transition() -> None:
    probe = Probe(partition_cap=4)
    probe.dispatcher.assign([0])
    items = [Item(0, offset, None) for offset in range(6)]
    probe.submit(*items[:4])
    assert probe.calls == [("pause", 0)]
    probe.submit(*items[4:])  # the consumer's buffer still delivers: no second pause
    assert probe.calls == [("pause", 0)] and probe.dispatcher.stats().paused == {0}
    probe.release(items[5], items[4], items[3])  # settled, but offset 0 holds the acks
    await settle()
    assert probe.calls == [("pause", 0)]  # settled-but-unacked items still count
    probe.release(items[0], items[1])
    await settle()
    assert probe.calls == [("pause", 0)]  # 4 held: above half the cap
    probe.release(items[2])
    await settle()
    assert probe.calls == [("pause", 0), ("resume", 0)]  # one resume for the drop to 0
    assert probe.positions == [6]  # it reads on after the last offset submitted
    probe.submit(*(Item(0, offset, None) for offset in range(6, 10)))
    assert probe.calls == [("pause", 0), ("resume", 0), ("pause", 0)]


async def test_records_read_again_after_a_resume_are_ignored() -> None:
    # The consumer seeks back to the resume position; what it still had
    # buffered past it arrives a second time and must not run twice.
    probe = Probe(partition_cap=2)
    probe.dispatcher.assign([0])
    first = [Item(0, offset, b"k") for offset in range(3)]
    probe.submit(*first)
    again = probe.dispatcher.submit(0, 1, b"k", Item(0, 1, b"k"))
    assert again is False
    for item in first:
        probe.release(item)
        await settle()
    assert probe.started == first and probe.acked == first
    assert probe.positions == [3]
    later = Item(0, 7, b"k")  # a hole (compaction, transaction marker) is no repeat
    assert probe.dispatcher.submit(0, 7, b"k", later)
    probe.release(later)
    await settle()
    assert probe.acked == [*first, later]


async def test_keyless_items_run_unordered_but_are_acked_in_offset_order() -> None:
    probe = Probe()
    probe.dispatcher.assign([0])
    items = [Item(0, offset, None) for offset in range(4)]
    probe.submit(*items)
    await settle()
    assert probe.running == 4  # all at once
    for item in reversed(items):
        probe.release(item)
        await settle()
    assert probe.finished == list(reversed(items))
    assert probe.acked == items


async def test_an_item_that_cannot_be_settled_stops_the_dispatcher_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    poison = Item(1, 3, b"a")
    probe = Probe(failing=frozenset({poison}))
    probe.dispatcher.assign([0, 1])
    before, after = Item(1, 2, b"b"), Item(1, 4, b"a")
    other = Item(0, 10, b"c")
    waiting = Item(0, 11, b"c")  # queued behind `other`, never starts after the failure
    probe.submit(before, poison, after, other, waiting)
    probe.release(before)
    await settle()
    with caplog.at_level(logging.CRITICAL, logger="flightrec.agents.dispatch"):
        probe.release(poison, after, waiting)
        await settle()
    (fatal,) = probe.fatal
    assert isinstance(fatal, RecorderError) and fatal.retryable
    assert fatal.context["item"] == "loan.applications/1@3"
    assert isinstance(fatal.__cause__, RecorderError)
    with pytest.raises(RecorderError) as raised:
        probe.dispatcher.submit(0, 12, b"d", Item(0, 12, b"d"))
    assert raised.value is fatal
    assert after not in probe.started  # its key stopped
    probe.release(other)  # already in flight: it may finish, and is acked
    await settle()
    assert probe.acked == [before, other]
    assert waiting not in probe.started  # no new run starts
    await asyncio.wait_for(probe.dispatcher.drain(timeout_s=5.0), 1.0)
    (record,) = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "loan.applications/1@3" in record.getMessage() and record.exc_info is not None


async def test_revoke_waits_then_fences_and_cancels_and_acks_nothing_after() -> None:
    probe = Probe()
    probe.dispatcher.assign([0, 1])
    quick = Item(0, 0, b"a")  # finishes during the revoke's wait: acked
    dropped = Item(0, 1, b"a")  # queued behind it: dropped unacked
    done_late = Item(0, 2, b"b")  # finishes, but offset 1 was dropped: never acked
    stuck = Item(0, 3, b"c")  # still running at the timeout: cancelled
    kept = Item(1, 0, b"a")  # another partition: untouched
    probe.submit(quick, dropped, done_late, stuck, kept)
    await settle()

    async def finish_during_the_wait() -> None:
        await asyncio.sleep(0.01)
        probe.release(quick, done_late)

    helper = asyncio.create_task(finish_during_the_wait())
    await probe.dispatcher.revoke([0], timeout_s=0.1)
    await helper
    assert probe.acked == [quick]
    assert dropped not in probe.started
    assert probe.cancelled == [stuck]
    fence = probe.fences[stuck]
    assert not fence.held
    with pytest.raises(FencedError) as refused:
        fence.check()
    assert refused.value.context == {"partition": "0", "generation": 1}
    assert not refused.value.retryable
    # The revoked partition takes nothing more; the other goes on.
    assert probe.dispatcher.submit(0, 4, b"d", Item(0, 4, b"d")) is False
    probe.release(dropped, stuck, kept)
    await settle()
    assert probe.acked == [quick, kept]
    # Assigned again: a new generation, from whatever offset Kafka redelivers.
    probe.dispatcher.assign([0])
    again = Item(0, 1, b"a")
    probe.submit(again)
    await settle()
    assert probe.fences[again].generation == 2 and probe.fences[again].held
    assert probe.acked == [quick, kept, again]


async def test_a_run_that_fails_after_its_partition_moved_is_not_fatal() -> None:
    probe = Probe()

    async def process(item: Item, fence: Fence) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            fence.check()  # the run notices it was fenced, and says so
            raise

    probe.dispatcher._process = process  # type: ignore[assignment]
    probe.dispatcher.assign([0])
    probe.dispatcher.submit(0, 0, b"a", Item(0, 0, b"a"))
    await settle()
    await probe.dispatcher.revoke([0], timeout_s=0.01)
    assert probe.fatal == [] and probe.dispatcher.failure is None and probe.acked == []


async def test_drain_lets_runs_finish_then_cancels_the_rest() -> None:
    probe = Probe()
    probe.dispatcher.assign([0])
    done, stuck = Item(0, 0, b"a"), Item(0, 1, b"b")
    probe.submit(done, stuck)
    await settle()
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, probe.release, done)
    await asyncio.wait_for(probe.dispatcher.drain(timeout_s=0.1), 2.0)
    assert probe.acked == [done] and probe.cancelled == [stuck]
    assert not probe.fences[stuck].held
    with pytest.raises(RuntimeError, match="drained"):
        probe.dispatcher.submit(0, 2, b"c", Item(0, 2, b"c"))


async def test_a_drain_cancelled_while_it_waits_still_fences_and_cancels_every_run() -> None:
    """Faust cancels a stopping agent's task at once: the drain is interrupted,
    yet before the cancellation goes on every fence is released and every run
    cancelled, so nothing runs on into the closed recorder and producer."""
    probe = Probe()
    probe.dispatcher.assign([0])
    first, second = Item(0, 0, b"a"), Item(0, 1, b"b")
    probe.submit(first, second)
    await settle()
    draining = asyncio.create_task(probe.dispatcher.drain(timeout_s=30.0))
    await settle()
    draining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await draining
    assert not probe.fences[first].held and not probe.fences[second].held
    await settle()
    assert sorted(probe.cancelled, key=lambda i: i.offset) == [first, second]
    assert probe.acked == []


async def test_stats_show_what_holds_commits_back() -> None:
    now = [100.0]
    probe = Probe(max_in_flight=1, partition_cap=2)
    dispatcher: KeyedDispatcher[Item] = KeyedDispatcher(
        probe.process,
        probe.ack,
        max_in_flight=1,
        partition_cap=2,
        clock=lambda: now[0],
    )
    dispatcher.assign([0, 1])
    first, second = Item(0, 5, b"a"), Item(0, 9, b"b")
    dispatcher.submit(0, 5, b"a", first)
    now[0] = 103.0
    dispatcher.submit(0, 9, b"b", second)
    await settle()
    now[0] = 110.0
    stats = dispatcher.stats()
    assert stats.in_flight == 1 and stats.queued == {0: 1, 1: 0}
    assert stats.unsettled == {0: 2, 1: 0}
    assert stats.oldest_unsettled_age_s == {0: 10.0}  # offset 5, dispatched at 100
    assert stats.paused == {0} and not stats.failed
    probe.release(first, second)
    await settle()
    assert dispatcher.stats().oldest_unsettled_age_s == {}
