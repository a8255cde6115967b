"""``ConfirmedProducer``: the one librdkafka producer of flightrec, driven off the
event loop. Every writer produces through it: the flight recorder, the worker's
decisions, DLQ records and attempt ledger, the ``DLQ`` rule action, replay
results and the demo (docs/design.md, "Layers").

Why not ``AIOProducer``: it does not accept headers in batch mode
(docs/design.md, "Known traps"), and we need headers on the CoT, decision and
DLQ topics.

One policy for every writer:

* Backpressure, never loss: ``BufferError`` (librdkafka's local queue is full)
  makes the producing coroutine wait and retry.
* A record librdkafka refuses outright (``KafkaException``, e.g. larger than
  ``message.max.bytes``) raises :class:`RecorderError` at once; a record the
  broker does not confirm fails its delivery with :class:`RecorderError`.
* Nothing blocks the loop: a dedicated thread calls ``poll()``; delivery
  reports are collected in a deque and handed to the loop in batches (one
  ``call_soon_threadsafe`` per poll, not per record), where each record's
  callback runs.
* Client-level errors (broker down, reconnecting) are logged as warnings:
  librdkafka retries within ``delivery.timeout.ms``, and a lasting failure
  surfaces as a failed delivery.
* :meth:`ConfirmedProducer.close` delivers what it can in time, then purges the
  rest so every record still gets its (failed) delivery report: no future or
  callback is left waiting.

The configuration is the caller's (``Settings.producer_config``: ``acks=all``,
idempotent, plus any overrides). Two ways to produce: :meth:`send` and
:meth:`send_and_wait` give a future per record, for occasional writes;
:meth:`produce` takes a callback and a context object per record and makes no
future, for the recorder's hot path.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, Unpack

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from flightrec.contracts.errors import RecorderError
from flightrec.contracts.headers import Header
from flightrec.contracts.writer import SendOptions

__all__ = ["ConfirmedProducer", "Header"]

log = logging.getLogger(__name__)

C = TypeVar("C")
# (callback, context, error, message): one delivery report waiting for the loop.
_Report = tuple[
    Callable[[Any, KafkaError | None, Message], object], Any, KafkaError | None, Message
]

# How long a producer waits for librdkafka's queue to drain before retrying.
_QUEUE_FULL_WAIT_S = 0.002
# librdkafka's "any partition" (the partitioner picks by key).
_ANY_PARTITION = -1


class ConfirmedProducer:
    """An idempotent, ``acks=all`` producer whose records are confirmed on the loop.

    ``config`` is the librdkafka configuration (an ``error_cb`` in it replaces
    the default warning log); ``name`` names the poll thread.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        poll_interval_s: float = 0.05,
        name: str = "flightrec-producer",
    ) -> None:
        self._producer = Producer({"error_cb": _log_client_error, **config})
        self._poll_interval_s = poll_interval_s
        self._name = name
        # Filled by librdkafka callbacks (poll or flush thread), drained on the loop.
        self._reports: deque[_Report] = deque()
        self._settle_scheduled = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # True from start() until close() begins: the one check produce() makes.
        self._open = False
        self._closed = False

    async def start(self) -> None:
        """Start the poll thread (the first send or produce does it too); idempotent.

        Raises :class:`RecorderError` after :meth:`close`.
        """
        if self._closed:
            raise RecorderError("producer is closed", retryable=False)
        if self._thread is not None:
            return
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._poll_forever, args=(loop,), name=f"{self._name}-poll", daemon=True
        )
        self._thread.start()
        self._open = True

    async def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: list[Header] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        on_delivery: Callable[[C, KafkaError | None, Message], object],
        context: C,
    ) -> None:
        """Queue one record; returns once librdkafka holds it (waits while its queue is full).

        ``on_delivery(context, error, message)`` then runs on the loop when the
        broker confirmed the record (``error`` is None) or did not. A record
        librdkafka refuses raises :class:`RecorderError` here, and its
        ``on_delivery`` never runs.
        """
        if not self._open:
            await self.start()
        reports = self._reports

        def delivered(err: KafkaError | None, msg: Message) -> None:  # poll or flush thread
            reports.append((on_delivery, context, err, msg))

        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=_ANY_PARTITION if partition is None else partition,
                    timestamp=0 if timestamp_ms is None else timestamp_ms,
                    # A list of (str, bytes) pairs is what the stub's list of
                    # (str, str | bytes | None) means; lists are invariant.
                    headers=headers,  # type: ignore[arg-type]
                    on_delivery=delivered,
                )
                return
            except BufferError:
                # librdkafka's queue is full: wait for deliveries, never drop.
                await asyncio.sleep(_QUEUE_FULL_WAIT_S)
                if not self._open:
                    # close() began: a record queued now might outlive its purge.
                    raise RecorderError(
                        "producer closed before the record was queued", topic=topic
                    ) from None
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                raise RecorderError(
                    "producer refused the record",
                    topic=topic,
                    kafka_error=err.str(),
                    retryable=err.retriable(),
                ) from exc

    async def send(
        self, topic: str, value: bytes | None, **options: Unpack[SendOptions]
    ) -> asyncio.Future[Message]:
        """Queue one record; return a future resolved on broker confirmation.

        Awaiting this coroutine only waits for local queue space (backpressure);
        await the returned future to wait for delivery. The future fails with
        :class:`RecorderError` when the broker did not confirm the record.
        """
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        headers = options.get("headers")
        await self.produce(
            topic,
            value,
            key=options.get("key"),
            headers=None if headers is None else list(headers),
            partition=options.get("partition"),
            on_delivery=_settle_future,
            context=future,
        )
        return future

    async def send_and_wait(
        self, topic: str, value: bytes | None, **options: Unpack[SendOptions]
    ) -> Message:
        """Send one record and wait for the broker's confirmation (see :meth:`send`)."""
        return await (await self.send(topic, value, **options))

    async def flush(self, timeout_s: float = 30.0) -> int:
        """Wait until everything queued is delivered; returns records still undelivered.

        Every delivery report received by then has run its callback when this
        returns (the recorder's close counts on it to checkpoint its last events).
        """
        remaining: int = await asyncio.to_thread(self._producer.flush, timeout_s)
        self._settle()
        return remaining

    async def close(self, timeout_s: float = 30.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop.

        Records still undelivered then are purged, so each gets a failed
        delivery report; every report is handed over before this returns.
        The producer cannot be used afterwards.
        """
        if self._closed:
            return
        self._closed = True
        self._open = False
        try:
            if await self.flush(timeout_s):
                self._producer.purge()
                await asyncio.to_thread(self._producer.flush, 1.0)
        finally:
            self._stopping.set()
            if self._thread is not None:
                await asyncio.to_thread(self._thread.join, 5.0)
                self._thread = None
            self._settle()

    # ---------------------------------------------------------------- delivery

    def _poll_forever(self, loop: asyncio.AbstractEventLoop) -> None:
        producer = self._producer
        reports = self._reports
        while not self._stopping.is_set():
            producer.poll(self._poll_interval_s)
            if reports and not self._settle_scheduled:
                self._settle_scheduled = True
                try:
                    loop.call_soon_threadsafe(self._settle)
                except RuntimeError:  # loop closed under us: nothing left to tell
                    return

    def _settle(self) -> None:
        # A callback that raises leaves the rest queued: the next poll reschedules them.
        self._settle_scheduled = False
        reports = self._reports
        while reports:
            on_delivery, context, err, msg = reports.popleft()
            on_delivery(context, err, msg)


def _settle_future(future: asyncio.Future[Message], err: KafkaError | None, msg: Message) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(msg)
    else:
        future.set_exception(
            RecorderError(
                "broker did not confirm delivery",
                topic=msg.topic(),
                kafka_error=err.str(),
                retryable=err.retriable(),
            )
        )


def _log_client_error(err: KafkaError) -> None:  # librdkafka thread
    # Transient (broker down, reconnecting): librdkafka retries within
    # delivery.timeout.ms; lasting failures surface as delivery errors.
    log.warning("kafka client: %s", err.str())
