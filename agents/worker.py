"""The Faust worker: the only module of flightrec that imports Faust.

Faust acks an event whose agent raised and commits past events it could not
decode (docs/design.md, known traps). So each input topic uses the raw
serializer, values are decoded inside ``RunPipeline.process`` (which catches
everything and confirms a DLQ record for poison), and the stream is
``noack()``: an event is acked by hand only when its decision (or DLQ record)
and all its CoT events are confirmed.

One process hosts one or more agents (:class:`~flightrec.agents.definition.AgentDefinition`).
Each gets its own Faust app, so its own input topic and consumer group
(``<app_id>.<agent name>``, :func:`consumer_group`): scaling or restarting one
agent's workers never rebalances another's. They share what a process needs
once (:class:`SharedServices`): the codec, the recorder (one producer into
``agent.cot``), the producer of decisions and dead letters, the attempt
ledger, the HTTP client, the PII guard. Each agent has its own model, tools
and pipeline.

Concurrency without reordering (docs/design.md, Concurrency and commits):
each agent's records go through a
:class:`~flightrec.agents.dispatch.KeyedDispatcher`: in order per (partition,
record key), different keys at once, up to ``max_in_flight`` runs for the
whole process; a partition holding ``partition_buffer`` records is paused
(Faust keeps polling, so the group keeps the worker). Records are acked in
offset order, contiguous per partition, so Faust's commit (the first
contiguous run of acked offsets) never passes a record still running. On a
revoke the partition's runs get ``revoke_timeout_s`` to settle, what they
settled is committed, and the rest is fenced: it publishes and acks nothing.
An event that cannot be settled at all (its DLQ write failed too) is never
skipped: it stays unacked and the process crashes (``app.crash`` of the app
the worker supervises, as Faust itself does for fatal rebalance errors), so it
exits and the next start resumes from the last committed offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from faust.types import TP, EventT, StreamT

from flightrec.agents.attempts import AttemptLedger
from flightrec.agents.definition import AgentDefinition
from flightrec.agents.dispatch import DispatchStats, Fence, KeyedDispatcher
from flightrec.agents.model import ClosableModel
from flightrec.agents.pipeline import RunPipeline
from flightrec.agents.registry import AgentRegistry, build_model
from flightrec.agents.worker_metrics import WorkerMetrics, status_line
from flightrec.contracts.codec import Codec
from flightrec.contracts.events import SourceRef
from flightrec.contracts.pii_keys import pii_keyring_for
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing_keys import signer_for
from flightrec.kafka.producer import ConfirmedProducer
from flightrec.recorder.dlq_cipher import DlqCipher
from flightrec.recorder.kafka_recorder import KafkaRecorder
from flightrec.recorder.log_filter import PiiLogFilter
from flightrec.recorder.otel import setup_metrics, setup_tracing
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
    signer = signer_for(settings)  # refuses before any connection (no managed key)
    keyring = pii_keyring_for(settings)  # likewise for the PII key
    # Decisions, DLQ records, attempts and the codec's DLQ rule action share one producer.
    producer = ConfirmedProducer(settings.producer_config())
    codec = Codec(settings, dlq_producer=producer, agent_contracts=agents.contracts())
    await codec.start()
    guard = PiiGuard(settings, keyring=keyring)
    tracer_provider = setup_tracing(settings)
    recorder = KafkaRecorder(
        settings, codec, guard=guard, tracer_provider=tracer_provider, signer=signer
    )
    ledger = AttemptLedger(
        settings.topics.attempts,
        settings.consumer_config(group_id=f"{settings.app_id}-ledger"),
        producer,
        lookback_s=settings.attempts_lookback_s,
    )
    http = HttpClient(settings)
    cipher = DlqCipher(settings, keyring)
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
        # Faust would wait, inside the rebalance, for every unacked record:
        # hundreds of runs of seconds each. The dispatcher's own revoke gives
        # them a bounded time instead, then fences them.
        stream_wait_empty=False,
        consumer_group_instance_id=(
            f"{settings.worker_instance_id}.{app_id}" if settings.worker_instance_id else None
        ),
        broker_session_timeout=settings.worker_session_timeout_s,
    )


@dataclass
class _Hosted:
    """One hosted agent in a running worker: its app, dispatcher and pipeline."""

    app: faust.App
    definition: AgentDefinition
    dispatcher: KeyedDispatcher[EventT[Any]]
    pipeline: RunPipeline | None = None
    stream: StreamT[Any] | None = None


# Resumes under way (a task is only weakly held by the loop).
_resuming: set[asyncio.Task[None]] = set()


def _resume_from(app: faust.App, tp: TP, position: int | None) -> None:
    """Resume fetching ``tp`` from ``position``, the dispatcher's next offset.

    Faust drops the records of a partition paused while a fetched batch is
    handed out, after its fetch position has moved past them; resumed as is,
    it would read on from there and take the jump for a hole in the log, and
    commit across it (docs/design.md, Concurrency and commits). Seeking first
    reads them again; the dispatcher ignores those it already has.
    """

    async def resume() -> None:
        if position is not None:
            await app.consumer.seek(tp, position)
        app.consumer.resume_partitions([tp])

    task = asyncio.get_running_loop().create_task(resume(), name=f"resume-{tp}")
    _resuming.add(task)
    task.add_done_callback(_resuming.discard)


def _host(
    app: faust.App,
    definition: AgentDefinition,
    settings: Settings,
    shared: SharedServices,
    on_fatal: Callable[[BaseException], Any],
    slots: asyncio.Semaphore,
) -> _Hosted:
    """Run ``definition`` on ``app``: its input topic, noack, key-ordered dispatch.

    The dispatcher is wired to the app's rebalance signals: an assigned
    partition starts a new generation; a revoked one stops dispatching, gives
    its runs ``revoke_timeout_s`` to settle, commits what they settled and
    fences the rest, all inside Faust's revoke handler (docs/design.md,
    Concurrency and commits)."""
    input_topic = definition.topics.resolve(settings).input
    topic = app.topic(
        input_topic, key_serializer="raw", value_serializer="raw", key_type=bytes, value_type=bytes
    )

    async def process(event: EventT[Any], fence: Fence) -> None:
        pipeline = hosted.pipeline
        if pipeline is None:  # the agent's services are not open: nothing may run
            raise RuntimeError(f"agent {definition.name} received a record before it started")
        message = event.message
        result = await pipeline.process(
            message.value, message.key, _source(message), _raw_headers(message.headers), fence
        )
        log.debug("%s -> %s", _describe(event), result.status)

    async def ack(event: EventT[Any]) -> None:
        # Acks arrive in offset order, contiguous per partition: Faust commits
        # the first contiguous run of acked offsets, which then never passes a
        # record still running (docs/design.md, Concurrency and commits).
        stream = hosted.stream
        if stream is None:
            raise RuntimeError(f"agent {definition.name} acked a record before it started")
        await stream.ack(event)

    hosted = _Hosted(
        app,
        definition,
        KeyedDispatcher(
            process,
            ack,
            max_in_flight=settings.max_in_flight,
            partition_cap=settings.partition_buffer,
            pause=lambda tp: app.consumer.pause_partitions([cast(TP, tp)]),
            resume=lambda tp, position: _resume_from(app, cast(TP, tp), position),
            # A record that cannot be settled stops the whole worker: it stays
            # unacked and a restart resumes from the last commit.
            on_fatal=on_fatal,
            describe=_describe,
            slots=slots,
        ),
    )

    # Faust sends these signals as (app, partitions, signal=...).
    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        assigned: set[TP] = args[0]
        hosted.dispatcher.assign([tp for tp in assigned if tp.topic == input_topic])

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        revoked: set[TP] = args[0]
        ours = [tp for tp in revoked if tp.topic == input_topic]
        if ours:
            await hosted.dispatcher.revoke(ours, timeout_s=settings.revoke_timeout_s)
            # Faust forgets a revoked partition's acks once this returns: commit now.
            await app.consumer.commit()

    @app.agent(topic, name=definition.name)
    async def run(stream: StreamT[Any]) -> None:
        # noack() exists on faust.Stream but not on the StreamT protocol.
        manual: StreamT[Any] = stream.noack()  # type: ignore[attr-defined]
        hosted.stream = manual
        async with shared.use() as services:
            hosted.pipeline = services.pipeline(definition)
            try:
                async for event in manual.events():
                    message = event.message
                    # After a failure submit raises; the app is crashing already.
                    hosted.dispatcher.submit(message.tp, message.offset, message.key, event)
            finally:
                await hosted.dispatcher.drain(timeout_s=20.0)

    return hosted


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
    # One limit of runs in flight for the whole process, whatever the agents.
    slots = asyncio.Semaphore(settings.max_in_flight)
    hosted = [
        _host(app, definition, settings, shared, primary.crash, slots)
        for app, definition in zip(apps, agents, strict=True)
    ]
    _report_status(primary, hosted, settings)
    return apps


def _lag(hosted: list[_Hosted]) -> dict[Any, int]:
    """Records between each partition's committable offset and its end."""
    lag: dict[Any, int] = {}
    for one in hosted:
        for tp, committable in one.dispatcher.stats().committable.items():
            high = one.app.consumer.highwater(cast(TP, tp))
            if high is not None:
                lag[tp] = max(0, high - committable)
    return lag


def _merged(hosted: list[_Hosted]) -> DispatchStats:
    """One snapshot of every hosted agent's dispatcher (partitions are distinct)."""
    parts = [one.dispatcher.stats() for one in hosted]
    return DispatchStats(
        in_flight=sum(p.in_flight for p in parts),
        queued={tp: n for p in parts for tp, n in p.queued.items()},
        unsettled={tp: n for p in parts for tp, n in p.unsettled.items()},
        committable={tp: n for p in parts for tp, n in p.committable.items()},
        oldest_unsettled_age_s={tp: a for p in parts for tp, a in p.oldest_unsettled_age_s.items()},
        paused=frozenset(tp for p in parts for tp in p.paused),
        failed=any(p.failed for p in parts),
    )


def _report_status(primary: faust.App, hosted: list[_Hosted], settings: Settings) -> None:
    """The OpenTelemetry gauges, and the status line every ``worker_status_interval_s``."""
    meters = setup_metrics(settings)
    WorkerMetrics(
        meters.get_meter("flightrec.worker"), lambda: _merged(hosted), lambda: _lag(hosted)
    )
    if settings.worker_status_interval_s > 0:
        # Faust's timer decorator is untyped.
        @primary.timer(settings.worker_status_interval_s)  # type: ignore[untyped-decorator]
        async def status() -> None:
            log.info("worker status: %s", status_line(_merged(hosted), _lag(hosted)))


def run_worker(settings: Settings, agents: AgentRegistry) -> int:
    """Run the worker for ``agents`` until interrupted (``flightrec worker``)."""
    from flightrec.kafka.topics import agent_topic_specs, check_partition_counts, ensure_topics

    # Before any connection: a worker that cannot sign its records, or would
    # tokenise with the public development key, never starts.
    signer_for(settings)
    pii_keyring_for(settings)
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
