"""``ConfirmedProducer``: confluent-kafka's ``Producer`` driven off the event loop,
each send returning an awaitable that resolves when the broker confirms it.

Why not ``AIOProducer``: it does not accept headers in batch mode (DESIGN.md,
known traps), and we need headers on the CoT, decision and DLQ topics.
A dedicated thread polls the producer so delivery callbacks run promptly
without blocking the loop; callbacks hand results back with
``call_soon_threadsafe``. ``BufferError`` (local queue full) is backpressure:
we wait and retry, never drop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from flightrec.contracts.errors import RecorderError
from flightrec.contracts.headers import Header

__all__ = ["ConfirmedProducer", "Header"]


class ConfirmedProducer:
    """An idempotent, ``acks=all`` producer whose sends are confirmed futures."""

    def __init__(self, config: Mapping[str, Any], *, poll_interval_s: float = 0.05) -> None:
        self._producer = Producer(dict(config))
        self._poll_interval_s = poll_interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Start the poll thread; idempotent."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._poll_forever, name="flightrec-producer-poll", daemon=True
        )
        self._thread.start()

    def _poll_forever(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(self._poll_interval_s)

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: Sequence[Header] | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Message]:
        """Queue one message; return a future resolved on broker confirmation.

        Awaiting this coroutine only waits for local queue space (backpressure);
        await the returned future to wait for delivery.
        """
        if self._loop is None:
            await self.start()
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[Message] = loop.create_future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            loop.call_soon_threadsafe(_settle, future, err, msg, topic)

        kwargs: dict[str, Any] = {"value": value, "key": key, "on_delivery": on_delivery}
        if headers:
            kwargs["headers"] = list(headers)
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                return future
            except BufferError:
                # Local queue full: wait for deliveries to drain, never drop.
                await asyncio.sleep(0.005)

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: Sequence[Header] | None = None,
        partition: int | None = None,
    ) -> Message:
        """Send one message and wait for the broker's confirmation."""
        return await (await self.send(topic, value, key=key, headers=headers, partition=partition))

    async def flush(self, timeout_s: float = 30.0) -> int:
        """Wait until everything queued is delivered; returns messages still queued."""
        remaining: int = await asyncio.to_thread(self._producer.flush, timeout_s)
        return remaining

    async def close(self, timeout_s: float = 30.0) -> None:
        """Flush, then stop the poll thread."""
        try:
            await self.flush(timeout_s)
        finally:
            self._stopping.set()
            if self._thread is not None:
                await asyncio.to_thread(self._thread.join, 5.0)
                self._thread = None


def _settle(
    future: asyncio.Future[Message], err: KafkaError | None, msg: Message, topic: str
) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(
            RecorderError(
                "broker did not confirm delivery",
                topic=topic,
                kafka_error=err.str(),
                retryable=err.retriable(),
            )
        )
    else:
        future.set_result(msg)
