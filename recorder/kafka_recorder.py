"""``KafkaRecorder``: CoT events to ``agent.cot``, confirmed, in order, never dropped.

Path of one event, all on the caller's task until the queue::

    emit(event, vault) -> PII scrub -> hash-chain seal -> encode (Avro via the
    registry, data-contract rules) -> bounded asyncio queue -> writer task ->
    ConfirmedProducer (flightrec.kafka: acks=all, idempotent) -> delivery
    report (poll thread) -> per-event future + per-run account on the loop

Why this shape:

* Key = trace id, so a run lives in one partition; one writer task takes the
  queue in FIFO order and the idempotent producer keeps that order through
  retries, so a trace is written in ``seq`` order.
* Backpressure, never loss: ``emit`` waits while the queue is full, and a full
  librdkafka buffer makes the writer wait and retry (the shared producer's
  policy).
* Nothing blocks the loop: the shared producer polls on its own thread and
  hands delivery reports to the loop in batches; the writer gives it a
  callback per event, not a future.
* Encoding happens in ``emit`` so a contract violation raises to the run that
  caused it, before anything is written; the chain head is then rolled back so
  the next event still links to the last one actually written.
* A failed delivery never passes silently: the event's future and
  :meth:`KafkaRecorder.confirm` for its run raise :class:`RecorderError`.
* With a signer, every confirmed event moves its partition's head in a
  :class:`~flightrec.recorder.checkpoints.Checkpointer` (one dict update per
  delivery report), which writes signed checkpoints of those heads every
  ``checkpoint_interval_s`` and on close (docs/design.md, "Checkpoints of the log").

Headers (names in :mod:`flightrec.contracts.headers`): ``traceparent`` (W3C,
the event's trace and span id), ``flightrec-kind`` (lets readers skip kinds
without decoding) and ``flightrec-subject`` (the business key the run is
about, e.g. the application id; never PII).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message
from opentelemetry.sdk.trace import TracerProvider

from flightrec.contracts.errors import RecorderError
from flightrec.contracts.events import TERMINAL_KINDS, CotEvent
from flightrec.contracts.headers import COT_KIND, COT_SUBJECT, TRACEPARENT, Header, traceparent
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing import RecordSigner, SignedHead
from flightrec.kafka.producer import ConfirmedProducer
from flightrec.recorder.base import CotEncoder
from flightrec.recorder.checkpoints import Checkpointer
from flightrec.recorder.pii import PiiScrubber
from flightrec.recorder.sealing import ScrubbingSealer
from flightrec.recorder.tracing import SpanRecorder

__all__ = ["KafkaRecorder", "cot_headers"]

log = logging.getLogger(__name__)

_EPOCH_MS = 1000


def cot_headers(event: CotEvent) -> list[Header]:
    """The Kafka headers of one CoT record; the subject is the run's business key
    (the input record's key for an event recorded without one)."""
    subject = event.business_key or event.source.key or ""
    return [
        (TRACEPARENT, traceparent(event.trace_id, event.span_id)),
        (COT_KIND, event.kind.encode("ascii")),
        (COT_SUBJECT, subject.encode("utf-8")),
    ]


@dataclass(eq=False)
class _Run:
    """Delivery account of one ``(trace_id, attempt)``."""

    outstanding: int = 0
    error: RecorderError | None = None
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    discarded: bool = False
    """The run ended abnormally: drop the account once settled, error or not."""


@dataclass(eq=False, slots=True)
class _Outgoing:
    key: tuple[str, int]
    seq: int
    head: str
    """The event's chain hash (what a checkpoint of its partition names)."""
    value: bytes
    headers: list[Header]
    timestamp_ms: int
    future: asyncio.Future[None]
    run: _Run


class KafkaRecorder:
    """The flight recorder on Kafka. ``await start()``, ``emit`` events, ``await close()``.

    ``encoder`` is any object with ``async encode_cot(event) -> bytes``
    (``flightrec.contracts.codec.Codec``). ``guard`` is the PII scrubber (the
    worker's ``PiiGuard``, so its caches are shared); without it, a private
    :class:`~flightrec.recorder.pii.PiiScrubber` scrubs with the vault given to ``emit``.
    With ``tracer_provider`` (or ``spans``), every recorded event also becomes
    OpenTelemetry spans. ``producer_overrides`` are extra librdkafka properties.
    ``signer`` signs each run's ``DECISION`` and terminal event
    (:mod:`flightrec.contracts.signing`) and the checkpoints of the partitions'
    chain heads, written every ``settings.checkpoint_interval_s`` (0: never) to
    ``settings.topics.checkpoints``; without it nothing is signed or checkpointed.
    """

    def __init__(
        self,
        settings: Settings,
        encoder: CotEncoder,
        *,
        guard: PiiScrubber | None = None,
        tracer_provider: TracerProvider | None = None,
        spans: SpanRecorder | None = None,
        producer_overrides: Mapping[str, Any] | None = None,
        poll_interval_s: float = 0.05,
        signer: RecordSigner | None = None,
    ) -> None:
        self._settings = settings
        self._encoder = encoder
        self._topic = settings.topics.cot
        if spans is None and tracer_provider is not None:
            spans = SpanRecorder(settings, tracer_provider)
        self._spans = spans
        self._config = settings.producer_config(**dict(producer_overrides or {}))
        self._poll_interval_s = poll_interval_s
        self._sealer = ScrubbingSealer(guard, signer)
        self._runs: dict[tuple[str, int], _Run] = {}
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue(
            maxsize=max(1, settings.recorder_queue_size)
        )
        self._producer: ConfirmedProducer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._checkpoint_interval_s = settings.checkpoint_interval_s
        self._checkpoints = (
            Checkpointer(settings, signer)
            if signer is not None and self._checkpoint_interval_s > 0
            else None
        )
        self._checkpointing: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Create the producer (and its poll thread) and the writer task; idempotent."""
        if self._producer is not None:
            return
        if self._closing:
            raise RecorderError("recorder is closed", topic=self._topic, retryable=False)
        self._loop = asyncio.get_running_loop()
        producer = ConfirmedProducer(
            self._config, poll_interval_s=self._poll_interval_s, name="flightrec-recorder"
        )
        await producer.start()
        self._producer = producer
        self._writer = asyncio.create_task(self._write_forever(), name="flightrec-recorder-writer")
        if self._checkpoints is not None:
            self._checkpointing = asyncio.create_task(
                self._checkpoints.run(producer, self._checkpoint_interval_s),
                name="flightrec-recorder-checkpoints",
            )

    async def __aenter__(self) -> KafkaRecorder:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Write and deliver everything queued (up to ``timeout_s``), then stop.

        Events that could not be delivered in time fail with ``RecorderError``.
        A recorder that checkpoints writes one last checkpoint of the events
        confirmed by then, within the same ``timeout_s``.
        """
        if self._closing:
            return
        self._closing = True
        producer = self._producer
        if producer is None:
            return
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout_s)
            if self._writer is not None:
                self._writer.cancel()
                await asyncio.gather(self._writer, return_exceptions=True)
            while not self._queue.empty():  # not even handed to librdkafka in time
                out = self._queue.get_nowait()
                self._finish(out, self._error("not written before close", out))
            await self._last_checkpoint(producer, deadline)
        finally:
            purge_after_s = timeout_s
            if self._checkpoints is not None:
                # It flushed for the last checkpoint already: what is still
                # undelivered gets the rest of the same timeout, not a second one.
                purge_after_s = max(0.0, deadline - asyncio.get_running_loop().time())
            try:
                # Undeliverable in time: purged, so each fails through _delivered.
                await producer.close(purge_after_s)
            finally:
                if self._spans is not None:
                    self._spans.close()
                self._producer = None  # librdkafka's handle is released with the object

    # --------------------------------------------------------------------- emit

    async def emit(
        self, event: CotEvent, vault: Mapping[str, str] | None = None
    ) -> Awaitable[None]:
        """Scrub, seal, encode and queue one event (waits while the queue is full).

        Returns a future resolved when the broker confirms the event, or failed
        with :class:`RecorderError`. Encoding errors (a data-contract rule)
        raise here, and the event is not recorded.
        """
        if self._closing:
            raise RecorderError("recorder is closed", topic=self._topic, retryable=False)
        if self._producer is None:
            await self.start()
        loop = self._loop
        assert loop is not None
        key = (event.trace_id, event.attempt)
        head = self._sealer.head(*key)
        sealed = self._sealer.seal_scrubbed(event, vault)
        chain_head = self._sealer.head(*key)
        assert chain_head is not None  # set by sealing
        run = self._runs.get(key)
        if run is None or run.discarded:  # a discarded run emitting again starts afresh
            run = self._runs[key] = _Run()
        try:
            value = await self._encoder.encode_cot(sealed)
            out = _Outgoing(
                key=key,
                seq=sealed.seq,
                head=chain_head,
                value=value,
                headers=cot_headers(sealed),
                timestamp_ms=int(sealed.ts.timestamp() * _EPOCH_MS),
                future=loop.create_future(),
                run=run,
            )
            await self._queue.put(out)
        except BaseException:
            self._sealer.restore(*key, head)
            if run.outstanding == 0 and run.error is None and not run.waiters:
                self._runs.pop(key, None)
            raise
        # No await between the put and here: the writer cannot have settled it yet.
        run.outstanding += 1
        # Earlier events may have settled during the awaits above and dropped the
        # account from the table: put it back so confirm() sees this event.
        self._runs[key] = run
        if sealed.kind in TERMINAL_KINDS:
            self._sealer.forget(*key)
        if self._spans is not None:
            self._spans.observe(sealed)
        return out.future

    def signed_head(self, trace_id: str, attempt: int) -> SignedHead | None:
        """The last signed chain head of the run emitted so far (see ``Recorder``)."""
        return self._sealer.last_signed(trace_id, attempt)

    async def confirm(self, trace_id: str, attempt: int) -> None:
        """Wait until every event of the run emitted so far is confirmed.

        Raises :class:`RecorderError` (retryable) when any of them was not; the
        run's account is then cleared.
        """
        key = (trace_id, attempt)
        run = self._runs.get(key)
        if run is None:
            return  # nothing outstanding and nothing failed
        if run.outstanding:
            assert self._loop is not None
            waiter: asyncio.Future[None] = self._loop.create_future()
            run.waiters.append(waiter)
            await waiter
        if run.error is not None:
            if self._runs.get(key) is run and run.outstanding == 0:
                del self._runs[key]
            raise run.error

    def discard_run(self, trace_id: str, attempt: int) -> None:
        """Release a run that ended abnormally (see :class:`~flightrec.recorder.base.Recorder`):
        its chain head and open spans now, its delivery account once the events
        it emitted are settled (they are still delivered, and ``pending`` counts
        them until then; a delivery error is then not kept for ``confirm``)."""
        key = (trace_id, attempt)
        self._sealer.forget(trace_id, attempt)
        if self._spans is not None:
            self._spans.abandon(trace_id, attempt, "flightrec.run_discarded")
        run = self._runs.get(key)
        if run is None:
            return
        if run.outstanding == 0:
            del self._runs[key]
        else:
            run.discarded = True

    def pending(self) -> int:
        """Events emitted and not yet confirmed or failed (all runs)."""
        return sum(run.outstanding for run in self._runs.values())

    # ------------------------------------------------------------------- writer

    async def _write_forever(self) -> None:
        queue = self._queue
        producer = self._producer
        assert producer is not None
        produce = producer.produce
        topic = self._topic
        delivered = self._delivered  # one bound method, not one per event
        while True:
            out = await queue.get()
            # Then everything already queued, without a task switch per event.
            while True:
                try:
                    await produce(
                        topic,
                        out.value,
                        key=out.key[0],
                        headers=out.headers,
                        timestamp_ms=out.timestamp_ms,
                        on_delivery=delivered,
                        context=out,
                    )
                except RecorderError as exc:  # librdkafka refused it: never queued
                    self._finish(out, self._error(exc.message, out, exc.context.get("kafka_error")))
                except asyncio.CancelledError:
                    # close() stopped waiting while the buffer was full: not written.
                    self._finish(out, self._error("not written before close", out))
                    raise
                except Exception as exc:  # the writer must outlive any one event
                    self._finish(out, self._error(f"could not produce: {exc}", out))
                finally:
                    queue.task_done()
                try:
                    out = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break

    # -------------------------------------------------------------- checkpoints

    async def _last_checkpoint(self, producer: ConfirmedProducer, deadline: float) -> None:
        """Stop the periodic checkpoints; write one of every event confirmed by now."""
        checkpoints = self._checkpoints
        if checkpoints is None:
            return
        if self._checkpointing is not None:
            self._checkpointing.cancel()
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        loop = asyncio.get_running_loop()
        # Flushing hands every delivery report to _delivered: the heads are final.
        await producer.flush(max(0.0, deadline - loop.time()))
        try:
            await asyncio.wait_for(checkpoints.write(producer), max(0.0, deadline - loop.time()))
        except (RecorderError, TimeoutError) as exc:
            log.error("last checkpoint not written: %r", exc)

    # ---------------------------------------------------------------- delivery

    def _delivered(self, out: _Outgoing, err: KafkaError | None, msg: Message) -> None:
        if err is None and self._checkpoints is not None:
            partition, offset = msg.partition(), msg.offset()
            if partition is not None and offset is not None:
                key = out.key
                self._checkpoints.confirmed(partition, offset, key[0], key[1], out.seq, out.head)
        self._finish(out, None if err is None else self._error("delivery failed", out, err))

    def _error(self, message: str, out: _Outgoing, err: Any = None) -> RecorderError:
        context: dict[str, Any] = {"topic": self._topic, "trace_id": out.key[0], "seq": out.seq}
        if isinstance(err, KafkaError):
            context["kafka_error"] = err.str()
        elif err is not None:
            context["kafka_error"] = str(err)
        return RecorderError(message, retryable=True, **context)

    def _finish(self, out: _Outgoing, error: RecorderError | None) -> None:
        future = out.future
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
                # Reported through confirm() too: don't warn if only that path is used.
                future.exception()
        run = out.run
        run.outstanding -= 1
        if error is not None and run.error is None:
            run.error = error
            log.error("CoT event not recorded: %s", error)
        if run.outstanding == 0:
            for waiter in run.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            run.waiters.clear()
            if (run.error is None or run.discarded) and self._runs.get(out.key) is run:
                del self._runs[out.key]
