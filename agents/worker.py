"""The Faust worker: the only module of flightrec that imports Faust.

Faust acks an event whose agent raised and commits past events it could not
decode (docs/design.md, known traps). So the input topic uses the raw serializer,
values are decoded inside ``RunPipeline.process`` (which catches everything and
confirms a DLQ record for poison), and the stream is ``noack()``: an event is
acked by hand only when its decision (or DLQ record) and all its CoT events are
confirmed. Faust commits the highest *contiguous* acked offset per partition.

Concurrency without reordering: every partition gets a lane
(``flightrec.agents.lanes.PartitionLanes``) that processes its events one after another;
up to ``worker_concurrency`` lanes run at once. An event that cannot be settled
at all (its DLQ write failed too) is never skipped: it stays unacked and the app
crashes (``app.crash``, as Faust itself does for fatal rebalance errors), so the
process exits and the next start resumes from the last committed offset.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import EventT, StreamT

from flightrec.agents.attempts import AttemptLedger
from flightrec.agents.lanes import PartitionLanes
from flightrec.agents.loan_agent import build_model, loan_agent
from flightrec.agents.pipeline import RunPipeline
from flightrec.contracts.codec import Codec
from flightrec.contracts.events import SourceRef
from flightrec.contracts.settings import Settings
from flightrec.kafka.producer import ConfirmedProducer
from flightrec.recorder.dlq_cipher import DlqCipher
from flightrec.recorder.kafka_recorder import KafkaRecorder
from flightrec.recorder.log_filter import PiiLogFilter
from flightrec.recorder.otel import setup_tracing
from flightrec.recorder.pii import PiiGuard
from flightrec.tools.http import HttpClient
from flightrec.tools.loan_tools import build_loan_toolset

__all__ = ["WorkerServices", "create_app", "open_services", "run_worker"]

log = logging.getLogger(__name__)


@dataclass
class WorkerServices:
    """Everything a running worker holds open; built by ``open_services``."""

    pipeline: RunPipeline
    recorder: KafkaRecorder
    producer: ConfirmedProducer
    ledger: AttemptLedger
    http: HttpClient


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[WorkerServices]:
    """Open codec, recorder, producer, ledger, tools; close them all on exit."""
    # Decisions, DLQ records, attempts and the codec's DLQ rule action share one producer.
    producer = ConfirmedProducer(settings.producer_config())
    codec = Codec(settings, dlq_producer=producer)
    await codec.start()
    guard = PiiGuard(settings)
    tracer_provider = setup_tracing(settings)
    recorder = KafkaRecorder(settings, codec, guard=guard, tracer_provider=tracer_provider)
    ledger = AttemptLedger(
        settings.topics.attempts,
        settings.consumer_config(group_id=f"{settings.app_id}-ledger"),
        producer,
        lookback_s=settings.attempts_lookback_s,
    )
    http = HttpClient(settings)
    cipher = DlqCipher(settings)
    log_filter = PiiLogFilter(guard).attach()
    model = build_model(settings)
    await producer.start()
    await recorder.start()
    await http.start()
    try:
        agent = loan_agent(profile=settings.model_profile)
        pipeline = RunPipeline(
            settings,
            agent=agent,
            model=model,
            tools=build_loan_toolset(settings, http, allowed=agent.tools),
            codec=codec,
            recorder=recorder,
            guard=guard,
            ledger=ledger,
            producer=producer,
            dlq_cipher=cipher,
        )
        yield WorkerServices(pipeline, recorder, producer, ledger, http)
    finally:
        # Close in reverse order of use; one failing close must not leak the rest.
        with contextlib.suppress(Exception):
            await recorder.close()
        with contextlib.suppress(Exception):
            await codec.close()  # writes through the producer: before it closes
        with contextlib.suppress(Exception):
            await producer.close()
        with contextlib.suppress(Exception):
            await http.close()
        with contextlib.suppress(Exception):
            await model.aclose()
        ledger.close()
        tracer_provider.shutdown()
        log_filter.detach()


def _source(message: Any) -> SourceRef:
    """Where a Faust message came from, as the pipeline records it."""
    return SourceRef(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key.decode("utf-8", "replace") if message.key else None,
    )


def _describe(event: EventT[Any]) -> str:
    """``topic/partition@offset`` of an event, for logs and errors."""
    message = event.message
    return f"{message.topic}/{message.partition}@{message.offset}"


def _raw_headers(headers: Any) -> list[tuple[str, bytes]]:
    """Faust hands headers over as a dict or a list of pairs; the pipeline wants pairs."""
    if not headers:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), v if isinstance(v, bytes) else str(v).encode()) for k, v in items]


def _broker_credentials(settings: Settings) -> Any:
    config = settings.kafka_client_config()
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    if protocol.startswith("SASL"):
        # Faust's SASLCredentials without an ssl_context is SASL_PLAINTEXT: pass one for SASL_SSL.
        return faust.SASLCredentials(
            username=config.get("sasl.username"),
            password=config.get("sasl.password"),
            mechanism=str(config.get("sasl.mechanism", "PLAIN")),
            ssl_context=ssl.create_default_context() if protocol == "SASL_SSL" else None,
        )
    if protocol == "SSL":
        return ssl.create_default_context()
    return None


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app with one agent per flightrec ``Agent`` (here: the loan agent)."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=_broker_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        topic_replication_factor=settings.replication_factor,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        store="memory://",
        topic_disable_leader=True,
        consumer_group_instance_id=settings.worker_instance_id,
        broker_session_timeout=settings.worker_session_timeout_s,
    )
    topic = app.topic(
        settings.topics.applications,
        key_serializer="raw",
        value_serializer="raw",
        key_type=bytes,
        value_type=bytes,
    )

    @app.agent(topic, name="loan-underwriter")
    async def loan_underwriter(stream: StreamT[Any]) -> None:
        # noack() exists on faust.Stream but not on the StreamT protocol.
        manual: StreamT[Any] = stream.noack()  # type: ignore[attr-defined]
        async with open_services(settings) as services:
            pipeline = services.pipeline

            async def process(event: EventT[Any]) -> None:
                message = event.message
                result = await pipeline.process(
                    message.value, message.key, _source(message), _raw_headers(message.headers)
                )
                log.debug("%s -> %s", _describe(event), result.status)

            lanes: PartitionLanes[EventT[Any]] = PartitionLanes(
                process,
                manual.ack,
                concurrency=settings.worker_concurrency,
                # A lane that cannot settle an event stops the whole worker: the
                # event stays unacked and a restart resumes from the last commit.
                on_fatal=app.crash,
                describe=_describe,
            )
            try:
                async for event in manual.events():
                    message = event.message
                    # After a lane failure submit raises; the app is crashing already.
                    await lanes.submit((message.topic, message.partition), event)
            finally:
                await lanes.drain(timeout_s=20.0)

    return app


def run_worker(settings: Settings) -> int:
    """Run the worker until interrupted (``flightrec worker``)."""
    from flightrec.kafka.topics import ensure_topics

    ensure_topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()
    return 0
