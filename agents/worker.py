"""The Faust worker: the only module of flightrec that imports Faust.

Faust acks an event whose agent raised and commits past events it could not
decode (docs/design.md, known traps). So each input topic uses the raw
serializer, values are decoded inside ``RunPipeline.process`` (which catches
everything and confirms a DLQ record for poison), and the stream is
``noack()``: an event is acked by hand only when its decision (or DLQ record)
and all its CoT events are confirmed. Faust commits the highest *contiguous*
acked offset per partition.

One process hosts one or more agents (:class:`~flightrec.agents.definition.AgentDefinition`).
Each gets its own Faust app, so its own input topic and consumer group
(``<app_id>.<agent name>``, :func:`consumer_group`): scaling or restarting one
agent's workers never rebalances another's. They share what a process needs
once (:class:`SharedServices`): the codec, the recorder (one producer into
``agent.cot``), the producer of decisions and dead letters, the attempt
ledger, the HTTP client, the PII guard. Each agent has its own model, tools
and pipeline.

Concurrency without reordering: every partition gets a lane
(``flightrec.agents.lanes.PartitionLanes``) that processes its events one after another;
up to ``worker_concurrency`` lanes run at once per agent. An event that cannot
be settled at all (its DLQ write failed too) is never skipped: it stays
unacked and the process crashes (``app.crash`` of the app the worker
supervises, as Faust itself does for fatal rebalance errors), so it exits and
the next start resumes from the last committed offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import EventT, StreamT

from flightrec.agents.attempts import AttemptLedger
from flightrec.agents.definition import AgentDefinition
from flightrec.agents.lanes import PartitionLanes
from flightrec.agents.model import ClosableModel
from flightrec.agents.pipeline import RunPipeline
from flightrec.agents.registry import AgentRegistry, build_model
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

__all__ = [
    "SharedServices",
    "WorkerServices",
    "consumer_group",
    "create_apps",
    "open_services",
    "run_worker",
]

log = logging.getLogger(__name__)


def consumer_group(settings: Settings, definition: AgentDefinition) -> str:
    """The consumer group (and Faust app id) of an agent's workers."""
    return f"{settings.app_id}.{definition.name}"


@dataclass
class WorkerServices:
    """Everything a running worker holds open for all its agents; built by ``open_services``."""

    settings: Settings
    agents: AgentRegistry
    codec: Codec
    recorder: KafkaRecorder
    producer: ConfirmedProducer
    ledger: AttemptLedger
    http: HttpClient
    guard: PiiGuard
    cipher: DlqCipher
    models: list[ClosableModel] = field(default_factory=list)

    def pipeline(self, definition: AgentDefinition) -> RunPipeline:
        """A pipeline for one hosted agent: its own model and tools, the shared rest.
        The model is closed with the services."""
        model = build_model(definition, self.settings)
        self.models.append(model)
        agent = definition.agent(self.settings.model_profile)
        return RunPipeline(
            self.settings,
            definition=definition,
            agent=agent,
            model=model,
            tools=definition.build_toolset(self.settings, self.http, allowed=agent.tools),
            codec=self.codec,
            recorder=self.recorder,
            guard=self.guard,
            ledger=self.ledger,
            producer=self.producer,
            dlq_cipher=self.cipher,
        )


@contextlib.asynccontextmanager
async def open_services(settings: Settings, agents: AgentRegistry) -> AsyncIterator[WorkerServices]:
    """Open codec, recorder, producer, ledger, HTTP client; close them all on exit."""
    # Decisions, DLQ records, attempts and the codec's DLQ rule action share one producer.
    producer = ConfirmedProducer(settings.producer_config())
    codec = Codec(settings, dlq_producer=producer, agent_contracts=agents.contracts())
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
    services = WorkerServices(
        settings, agents, codec, recorder, producer, ledger, http, guard, cipher
    )
    try:
        await producer.start()
        await recorder.start()
        await http.start()
        yield services
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
        for model in services.models:
            with contextlib.suppress(Exception):
                await model.aclose()
        ledger.close()
        tracer_provider.shutdown()
        log_filter.detach()


class SharedServices:
    """The process's :class:`WorkerServices`, opened by the first hosted agent to
    start and closed when the last one stops."""

    def __init__(self, settings: Settings, agents: AgentRegistry) -> None:
        self._settings = settings
        self._agents = agents
        self._lock = asyncio.Lock()
        self._users = 0
        self._stack: contextlib.AsyncExitStack | None = None
        self._services: WorkerServices | None = None

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[WorkerServices]:
        """The shared services, open for as long as the caller's block runs."""
        async with self._lock:
            if self._services is None:
                stack = contextlib.AsyncExitStack()
                self._services = await stack.enter_async_context(
                    open_services(self._settings, self._agents)
                )
                self._stack = stack
            self._users += 1
            services = self._services
        try:
            yield services
        finally:
            async with self._lock:
                self._users -= 1
                if self._users == 0 and self._stack is not None:
                    stack, self._stack, self._services = self._stack, None, None
                    await stack.aclose()


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


def _app(settings: Settings, app_id: str) -> faust.App:
    return faust.App(
        app_id,
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
        consumer_group_instance_id=(
            f"{settings.worker_instance_id}.{app_id}" if settings.worker_instance_id else None
        ),
        broker_session_timeout=settings.worker_session_timeout_s,
    )


def _host(
    app: faust.App,
    definition: AgentDefinition,
    settings: Settings,
    shared: SharedServices,
    on_fatal: Callable[[BaseException], Any],
) -> None:
    """Run ``definition`` on ``app``: its input topic, noack, one lane per partition."""
    topic = app.topic(
        definition.topics.resolve(settings).input,
        key_serializer="raw",
        value_serializer="raw",
        key_type=bytes,
        value_type=bytes,
    )

    @app.agent(topic, name=definition.name)
    async def run(stream: StreamT[Any]) -> None:
        # noack() exists on faust.Stream but not on the StreamT protocol.
        manual: StreamT[Any] = stream.noack()  # type: ignore[attr-defined]
        async with shared.use() as services:
            pipeline = services.pipeline(definition)

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
                on_fatal=on_fatal,
                describe=_describe,
            )
            try:
                async for event in manual.events():
                    message = event.message
                    # After a lane failure submit raises; the app is crashing already.
                    await lanes.submit((message.topic, message.partition), event)
            finally:
                await lanes.drain(timeout_s=20.0)


def create_apps(settings: Settings, agents: AgentRegistry) -> list[faust.App]:
    """One Faust app per hosted agent (its consumer group is :func:`consumer_group`).

    The first app is the one ``faust.Worker`` supervises; the others run as its
    services. A fatal lane failure in any of them crashes the first, which
    stops the worker and with it every app.
    """
    if not len(agents):
        raise ValueError("a worker hosts at least one agent")
    shared = SharedServices(settings, agents)
    apps = [_app(settings, consumer_group(settings, definition)) for definition in agents]
    primary = apps[0]
    for app, definition in zip(apps, agents, strict=True):
        _host(app, definition, settings, shared, primary.crash)
    return apps


def run_worker(settings: Settings, agents: AgentRegistry) -> int:
    """Run the worker for ``agents`` until interrupted (``flightrec worker``)."""
    from flightrec.kafka.topics import agent_topic_specs, check_partition_counts, ensure_topics

    extra = [
        spec
        for definition in agents
        for spec in agent_topic_specs(settings, *_topic_names(settings, definition))
    ]
    ensure_topics(settings, extra=extra)
    inputs = [definition.topics.resolve(settings).input for definition in agents]
    check_partition_counts(settings, [*inputs, settings.topics.attempts])
    apps = create_apps(settings, agents)
    worker = faust.Worker(apps[0], *apps[1:], loglevel="INFO", quiet=True)
    worker.execute_from_commandline()
    return 0


def _topic_names(settings: Settings, definition: AgentDefinition) -> tuple[str, str, str]:
    topics = definition.topics.resolve(settings)
    return topics.input, topics.decisions, topics.dlq
