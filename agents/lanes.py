"""``PartitionLanes``: concurrency across partitions, strict order within one.

Every lane key (the worker uses ``(topic, partition)``) gets a lane: a bounded
queue and a task that processes its items one after another and acks each one
after it was processed. Up to ``concurrency`` lanes process at once; the slot is
held per item, so an idle lane holds none. A full lane holds ``submit`` back,
which is backpressure on the stream that feeds it.

Failure is loud and final. ``process`` settles an item (the pipeline confirms a
decision or a DLQ record); when it raises, the item could not be settled (the
DLQ write failed too: the broker is gone). Skipping the item would lose it, and
a lane that just dies stalls its partition silently while the rest of the
worker looks healthy. So instead:

* the item is not acked, and nothing after it in its lane is processed (the
  queued rest is dropped unacked: Kafka still has all of it);
* the failure is logged with the lane and the item's position;
* ``on_fatal`` is awaited once (the worker crashes the Faust app there, so the
  process exits and the next start resumes from the last committed offset);
* every later ``submit`` raises the failure, a
  :class:`~flightrec.contracts.errors.RecorderError`.

No Faust in here, so the machinery is unit tested; ``flightrec.agents.worker`` wires it
to a Faust stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from flightrec.contracts.errors import RecorderError

__all__ = ["PartitionLanes"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class PartitionLanes(Generic[T]):
    """One sequential lane per key; at most ``concurrency`` lanes busy at once."""

    def __init__(
        self,
        process: Callable[[T], Awaitable[object]],
        ack: Callable[[T], Awaitable[object]],
        *,
        concurrency: int,
        capacity: int = 64,
        on_fatal: Callable[[BaseException], Awaitable[object]] | None = None,
        describe: Callable[[T], str] = repr,
    ) -> None:
        self._process = process
        self._ack = ack
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._capacity = max(1, capacity)
        self._on_fatal = on_fatal
        self._describe = describe
        self._queues: dict[Hashable, asyncio.Queue[T]] = {}
        self._tasks: dict[Hashable, asyncio.Task[None]] = {}
        self._failure: RecorderError | None = None

    @property
    def failure(self) -> RecorderError | None:
        """The first failure of any lane, or None while every lane is healthy."""
        return self._failure

    async def submit(self, key: Hashable, item: T) -> None:
        """Queue ``item`` on the lane of ``key``; waits while that lane is full.

        Raises the lanes' failure once any lane has failed: the caller must stop
        feeding (the item was not and will not be processed).
        """
        self._raise_if_failed()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue(maxsize=self._capacity)
            self._tasks[key] = asyncio.create_task(self._lane(key, queue), name=f"lane-{key}")
        await queue.put(item)
        # The lane may have failed while put waited for room; then this item
        # sits in a dead queue, and the caller must hear so now.
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _lane(self, key: Hashable, queue: asyncio.Queue[T]) -> None:
        while True:
            item = await queue.get()
            try:
                async with self._slots:
                    await self._process(item)
                # Ack only after process() returned: its outputs are confirmed.
                await self._ack(item)
            except Exception as exc:
                queue.task_done()
                await self._fail(key, item, queue, exc)
                return
            queue.task_done()

    async def _fail(self, key: Hashable, item: T, queue: asyncio.Queue[T], exc: Exception) -> None:
        described = self._describe(item)
        dropped = _drop_queued(queue)
        log.critical(
            "could not settle %s (lane %s): %s: %s; it stays unacked, the lane stops "
            "with %d queued item(s) unprocessed, and the worker must restart from the "
            "last committed offset",
            described,
            key,
            type(exc).__name__,
            exc,
            dropped,
            exc_info=exc,
        )
        failure = RecorderError(
            "an input could not be settled; its lane stopped",
            lane=str(key),
            item=described,
            error=f"{type(exc).__name__}: {exc}",
            retryable=True,
        )
        failure.__cause__ = exc
        first = self._failure is None
        if first:
            self._failure = failure
        if first and self._on_fatal is not None:
            try:
                await self._on_fatal(failure)
            except Exception:
                # The failure is already recorded and every submit raises it;
                # a failing stop hook must not hide that.
                log.exception("on_fatal hook failed for lane %s", key)

    async def drain(self, timeout_s: float) -> None:
        """Let healthy lanes finish what they hold (clean shutdown), then stop all lanes."""
        live = [queue.join() for key, queue in self._queues.items() if not self._tasks[key].done()]
        if live:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*live), timeout_s)
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


def _drop_queued(queue: asyncio.Queue[T]) -> int:
    """Empty a dead lane's queue (its items stay unacked) so ``join`` and a
    blocked ``put`` return instead of hanging; returns how many were dropped."""
    dropped = 0
    while True:
        try:
            queue.get_nowait()
        except asyncio.QueueEmpty:
            return dropped
        queue.task_done()
        dropped += 1
