"""``KeyedDispatcher``: many runs in flight, in order per subject, committed safely.

A run is I/O bound (a hosted model takes seconds per call), so a worker must
hold hundreds of runs in flight, far more than it has partitions. Order matters
per subject (the record key), not per partition. So every ``(partition, key)``
gets a FIFO: a key's items run one after another in input order, different
keys run concurrently, and keyless items run unordered. ``max_in_flight``
bounds how many run at once across everything.

Acks are what Faust commits, and it commits the highest *contiguous* run of
acked offsets. Acking out of offset order is not safe with it: once offset 7
is committed, an ack of 9 with 8 still running is contiguous with the commit as
Faust reads it, so 10 would be committed past 8. So the dispatcher acks only
what the :class:`~flightrec.agents.offsets.OffsetTracker` calls committable,
in offset order, one ack at a time per partition: whoever commits acked
offsets never sees a gap, and never an offset past an unsettled one.

Backpressure without blocking the consumer loop: ``submit`` never waits (Faust
must keep polling, or the group evicts the worker). Instead a partition that
holds ``partition_cap`` items (queued, running, or settled but waiting for an
earlier offset to settle before they can be acked) is paused through the
``pause`` callback, and resumed once it holds half as many. Counting the
settled-but-unacked items too keeps memory bounded when one slow run holds the
commit back, and it bounds what a crash makes the next owner read again.

A pause may lose fetched records on the consumer's side (Faust drops the rest
of a fetched batch of a partition paused while the batch is handed out, and
its fetch position has already moved past them; it would later take the jump
for a hole in the log and commit across it). So ``resume(tp, position)`` gets
the next offset this dispatcher expects, for the consumer to seek there before
it fetches again, and ``submit`` ignores a record it has already dispatched
(one that was still in the consumer's buffer is read a second time after
the seek).

Failure is loud and final:
``process`` raising means the item could not be settled (the DLQ write failed
too). The item stays unacked (and so does everything after it in its
partition), its key stops, nothing new starts anywhere (the broker is gone;
new runs would fail the same way), ``on_fatal`` is awaited once, and every
later ``submit`` raises the failure (a
:class:`~flightrec.contracts.errors.RecorderError`). Runs already in flight may
finish and be acked up to the failed offset.

Rebalances: ``revoke`` stops a partition, gives its running items ``timeout_s``
to finish, then releases its :class:`Fence` and cancels them. Each run gets the
fence of its partition's assignment (its generation) and checks it before it
publishes; once released, ``check`` raises
:class:`~flightrec.contracts.errors.FencedError`, and the dispatcher acks
nothing more of that partition. ``assign`` starts a new generation.

No Faust in here, so the machinery is unit tested; ``flightrec.agents.worker``
wires it to a Faust stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from flightrec.agents.offsets import OffsetTracker
from flightrec.contracts.errors import FencedError, RecorderError

__all__ = ["DispatchStats", "Fence", "KeyedDispatcher"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Fence:
    """Whether the partition of a run is still assigned to this worker.

    One per partition and assignment (generation). A run checks it before each
    write that must not happen after the partition moved (publishing a
    decision, acking); a revoked partition's fence stays released forever.
    """

    def __init__(self, tp: Hashable, generation: int) -> None:
        self.tp = tp
        self.generation = generation
        self._held = True

    @property
    def held(self) -> bool:
        """True while the partition is still ours in this generation."""
        return self._held

    def check(self) -> None:
        """Raise :class:`FencedError` if the partition was revoked."""
        if not self._held:
            raise FencedError(
                "the partition was revoked; this run may not publish or ack",
                partition=str(self.tp),
                generation=self.generation,
            )

    def release(self) -> None:
        """Revoke: from now on ``held`` is False and ``check`` raises."""
        self._held = False

    def __repr__(self) -> str:
        return f"Fence({self.tp!r}, generation={self.generation}, held={self._held})"


@dataclass(frozen=True)
class DispatchStats:
    """A snapshot of the dispatcher, for metrics.

    ``queued``, ``unsettled`` and ``oldest_unsettled_age_s`` are per assigned
    partition; a partition with nothing unsettled has no age.
    """

    in_flight: int
    queued: Mapping[Hashable, int]
    unsettled: Mapping[Hashable, int]
    committable: Mapping[Hashable, int]
    oldest_unsettled_age_s: Mapping[Hashable, float]
    paused: frozenset[Hashable]
    failed: bool


class _State(enum.Enum):
    QUEUED = "queued"  # waiting for its key's earlier items or for a slot
    RUNNING = "running"
    SETTLED = "settled"  # process returned; waits for earlier offsets to be acked
    ACKED = "acked"
    DROPPED = "dropped"  # revoked before it ran: Kafka redelivers it to the new owner
    FAILED = "failed"


@dataclass(eq=False)
class _Entry(Generic[T]):
    offset: int
    key: bytes | None
    item: T
    dispatched_at: float
    state: _State = _State.QUEUED


@dataclass(eq=False)
class _Partition(Generic[T]):
    """One assigned partition in one generation."""

    fence: Fence
    # Dispatched and not yet acked, by offset; insertion order is offset order.
    unacked: dict[int, _Entry[T]] = field(default_factory=dict)
    lanes: dict[bytes, deque[_Entry[T]]] = field(default_factory=dict)
    tasks: dict[asyncio.Task[None], _Entry[T]] = field(default_factory=dict)
    acking: asyncio.Lock = field(default_factory=asyncio.Lock)
    paused: bool = False
    revoking: bool = False


class KeyedDispatcher(Generic[T]):
    """Key-ordered concurrent processing with offset-ordered acks.

    ``process(item, fence)`` settles an item (its outputs are confirmed) and
    should call ``fence.check()`` before it publishes; ``ack(item)`` tells the
    consumer the item may be committed. ``pause(tp)`` / ``resume(tp, position)``
    stop and restart fetching a partition, the latter from ``position`` (the
    offset after the last one submitted); each is called once per transition.
    """

    def __init__(
        self,
        process: Callable[[T, Fence], Awaitable[object]],
        ack: Callable[[T], Awaitable[object]],
        *,
        max_in_flight: int,
        partition_cap: int,
        pause: Callable[[Hashable], object] = lambda tp: None,
        resume: Callable[[Hashable, int | None], object] = lambda tp, position: None,
        on_fatal: Callable[[BaseException], Awaitable[object]] | None = None,
        describe: Callable[[T], str] = repr,
        clock: Callable[[], float] = time.monotonic,
        slots: asyncio.Semaphore | None = None,
    ) -> None:
        self._process = process
        self._ack = ack
        # ``slots`` shares one limit between dispatchers (one per hosted agent:
        # the limit is the worker process's); by default this one's own.
        self._slots = slots if slots is not None else asyncio.Semaphore(max(1, max_in_flight))
        self._cap = max(1, partition_cap)
        self._pause = pause
        self._resume = resume
        self._on_fatal = on_fatal
        self._describe = describe
        self._clock = clock
        self._tracker = OffsetTracker()
        self._partitions: dict[Hashable, _Partition[T]] = {}
        self._generations: dict[Hashable, int] = {}
        self._in_flight = 0
        self._live = 0  # tasks alive across all partitions
        self._idle = asyncio.Event()
        self._idle.set()
        self._failure: RecorderError | None = None
        self._closed = False

    @property
    def failure(self) -> RecorderError | None:
        """The first item that could not be settled, or None while all is healthy."""
        return self._failure

    # -- assignment ---------------------------------------------------------

    def assign(self, tps: Collection[Hashable]) -> None:
        """Start a new generation for each newly assigned partition.

        A partition that is still assigned (not revoked since) keeps its
        generation and everything it holds: nothing moved.
        """
        for tp in tps:
            if tp in self._partitions:
                continue
            generation = self._generations.get(tp, 0) + 1
            self._generations[tp] = generation
            self._partitions[tp] = _Partition(Fence(tp, generation))

    async def revoke(self, tps: Collection[Hashable], timeout_s: float) -> None:
        """Give up partitions (a rebalance moved them).

        Queued items are dropped unacked (Kafka redelivers them to the new
        owner); running ones get up to ``timeout_s`` to finish (and are acked
        if contiguous); then the fence is released and what still runs is
        cancelled. When this returns, nothing of these partitions is acked
        any more. ``pause``/``resume`` are not called for them: the consumer
        forgets a revoked partition's pause itself.
        """
        parts = {tp: self._partitions[tp] for tp in tps if tp in self._partitions}
        for part in parts.values():
            part.revoking = True
            self._drop_queued(part)
        running = {task for part in parts.values() for task in part.tasks}
        if running:
            await asyncio.wait(running, timeout=timeout_s)
        for part in parts.values():
            part.fence.release()
        still = [task for task in running if not task.done()]
        await self._cancel(still, timeout_s)
        for tp, part in parts.items():
            # An ack already under way finishes before this returns; none starts after.
            async with part.acking:
                pass
            del self._partitions[tp]
            self._tracker.forget(tp)
            if still:
                log.warning("revoked %s with %d run(s) cancelled", tp, len(still))

    def _drop_queued(self, part: _Partition[T]) -> None:
        for task, entry in list(part.tasks.items()):
            if entry.state is _State.QUEUED:  # waits for a slot: never started
                task.cancel()
        for entry in part.unacked.values():
            if entry.state is _State.QUEUED:
                entry.state = _State.DROPPED
        part.lanes.clear()

    # -- feeding ------------------------------------------------------------

    def submit(self, tp: Hashable, offset: int, key: bytes | None, item: T) -> bool:
        """Dispatch ``item`` (offset ``offset`` of partition ``tp``); never waits.

        Returns False, and drops the item, if ``tp`` is not assigned (an event
        fetched before a revoke: its new owner reads it) or if its offset was
        dispatched already (read again after a resume). Raises the
        dispatcher's failure once an item could not be settled: the caller
        must stop feeding (this item was not and will not be processed).
        """
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise RuntimeError("the dispatcher was drained; it takes no more items")
        part = self._partitions.get(tp)
        if part is None or part.revoking:
            log.warning("dropped %s: partition %s is not assigned", self._describe(item), tp)
            return False
        position = self._tracker.position(tp)
        if position is not None and offset < position:
            # Read again after a resume's seek: dispatched already.
            log.debug(
                "ignored %s: offset %d of %s was dispatched", self._describe(item), offset, tp
            )
            return False
        self._tracker.dispatched(tp, offset)
        entry = _Entry(offset, key, item, self._clock())
        part.unacked[offset] = entry
        if key is None:
            self._start(part, entry)
        elif key in part.lanes:
            part.lanes[key].append(entry)
        else:
            part.lanes[key] = deque([entry])
            self._start(part, entry)
        if not part.paused and len(part.unacked) >= self._cap:
            part.paused = True
            self._pause(tp)
        return True

    def _start(self, part: _Partition[T], entry: _Entry[T]) -> None:
        task = asyncio.create_task(self._run(part, entry), name=f"dispatch-{entry.offset}")
        part.tasks[task] = entry
        self._live += 1
        self._idle.clear()
        task.add_done_callback(lambda done: self._finished(part, done))

    def _finished(self, part: _Partition[T], task: asyncio.Task[None]) -> None:
        del part.tasks[task]
        self._live -= 1
        if not self._live:
            self._idle.set()
        if not task.cancelled() and task.exception() is not None:
            # _run handles every failure of process and ack; this is a bug in here.
            log.error("dispatch task failed", exc_info=task.exception())

    # -- one item -----------------------------------------------------------

    async def _run(self, part: _Partition[T], entry: _Entry[T]) -> None:
        async with self._slots:
            if self._failure is not None or entry.state is not _State.QUEUED:
                return  # failed elsewhere, or dropped by a revoke while waiting
            entry.state = _State.RUNNING
            self._in_flight += 1
            try:
                await self._process(entry.item, part.fence)
            except Exception as exc:
                if not part.fence.held:
                    # The partition moved while this ran: whatever failed, the
                    # new owner redoes the item; nothing here is fatal.
                    log.info(
                        "%s ended after its partition was revoked: %r",
                        self._describe(entry.item),
                        exc,
                    )
                    return
                entry.state = _State.FAILED
                await self._fail(part, entry, exc)
                return
            finally:
                self._in_flight -= 1
        if not part.fence.held:
            return
        try:
            self._settle(part, entry)
            await self._advance(part)
        except Exception as exc:
            # The ack callback failed, or the offset bookkeeping broke an
            # invariant: either way commits can no longer be trusted to be safe.
            await self._fail(part, entry, exc)

    def _settle(self, part: _Partition[T], entry: _Entry[T]) -> None:
        entry.state = _State.SETTLED
        self._tracker.settled(part.fence.tp, entry.offset)
        if entry.key is None:
            return
        lane = part.lanes.get(entry.key)
        if lane is None:  # revoking: the key's queued items were dropped
            return
        lane.popleft()
        if lane:
            self._start(part, lane[0])
        else:
            del part.lanes[entry.key]

    async def _advance(self, part: _Partition[T]) -> None:
        """Ack, in offset order, every item now below the committable offset."""
        tp = part.fence.tp
        async with part.acking:
            while part.fence.held and part.unacked:
                committable = self._tracker.committable(tp)
                head = next(iter(part.unacked.values()))
                if committable is None or head.offset >= committable:
                    return
                if head.state is not _State.SETTLED:
                    # Checked here too, not with `assert` (stripped under -O):
                    # acking an unsettled item loses it on a crash.
                    raise AssertionError(f"would ack {head} of {tp!r}, which is {head.state}")
                del part.unacked[head.offset]
                head.state = _State.ACKED
                await self._ack(head.item)
                if part.paused and len(part.unacked) <= self._cap // 2:
                    part.paused = False
                    self._resume(tp, self._tracker.position(tp))

    async def _fail(self, part: _Partition[T], entry: _Entry[T], exc: Exception) -> None:
        described = self._describe(entry.item)
        tp = part.fence.tp
        log.critical(
            "could not settle %s (partition %s, key %r): %s: %s; it stays unacked, "
            "its key and everything after it in the partition stay uncommitted, no "
            "new run starts, and the worker must restart from the last committed offset",
            described,
            tp,
            entry.key,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        failure = RecorderError(
            "an input could not be settled; the dispatcher stopped",
            partition=str(tp),
            item=described,
            error=f"{type(exc).__name__}: {exc}",
            retryable=True,
        )
        failure.__cause__ = exc
        if self._failure is not None:
            return
        self._failure = failure
        if self._on_fatal is not None:
            try:
                await self._on_fatal(failure)
            except Exception:
                # The failure is recorded and every submit raises it; a failing
                # stop hook must not hide that.
                log.exception("on_fatal hook failed for partition %s", tp)

    # -- shutdown and metrics -------------------------------------------------

    async def drain(self, timeout_s: float) -> None:
        """Clean shutdown: let what was submitted finish (up to ``timeout_s``),
        then release every fence and cancel what still runs.

        Cancelled while it waits (Faust cancels an agent's task as soon as it
        stops), it still releases every fence and cancels every run before the
        cancellation goes on: the caller closes the recorder and the producer
        next, and a run left holding its fence would take "recorder is
        closed" for a bad input and dead-letter it."""
        self._closed = True
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout_s)
        finally:
            tasks = self._abandon()
        await self._cancel(tasks, 1.0)

    def _abandon(self) -> list[asyncio.Task[None]]:
        """Release every fence and cancel every run, at once (no await)."""
        tasks = [t for part in self._partitions.values() for t in part.tasks]
        for part in self._partitions.values():
            part.fence.release()
        for task in tasks:
            task.cancel()
        return tasks

    async def _cancel(self, tasks: list[asyncio.Task[None]], grace_s: float) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            _, alive = await asyncio.wait(tasks, timeout=grace_s)
            if alive:
                # Fenced already, so they can neither publish nor ack; only logged.
                log.error("%d cancelled run(s) did not stop within %.1fs", len(alive), grace_s)

    def stats(self) -> DispatchStats:
        """What is running, waiting and holding commits back, right now."""
        now = self._clock()
        queued: dict[Hashable, int] = {}
        unsettled: dict[Hashable, int] = {}
        committable: dict[Hashable, int] = {}
        ages: dict[Hashable, float] = {}
        for tp, part in self._partitions.items():
            queued[tp] = sum(e.state is _State.QUEUED for e in part.unacked.values())
            unsettled[tp] = self._tracker.unsettled(tp)
            next_offset = self._tracker.committable(tp)
            if next_offset is not None:
                committable[tp] = next_offset
            oldest = self._tracker.oldest_unsettled(tp)
            if oldest is not None:
                ages[tp] = now - part.unacked[oldest].dispatched_at
        return DispatchStats(
            in_flight=self._in_flight,
            queued=queued,
            unsettled=unsettled,
            committable=committable,
            oldest_unsettled_age_s=ages,
            paused=frozenset(tp for tp, part in self._partitions.items() if part.paused),
            failed=self._failure is not None,
        )
