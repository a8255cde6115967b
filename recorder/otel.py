"""OpenTelemetry set-up: a tracer provider whose span ids can be the CoT ids.

:func:`setup_tracing` builds a :class:`TracerProvider` (never installed as the
process-wide global: it is passed explicitly, like ``Settings``) with

* :class:`CotIdGenerator`, so :class:`~flightrec.recorder.tracing.SpanRecorder` can give a
  span the trace id and span id of the CoT event it stands for: a trace id
  pasted from the flight record finds the spans, and the other way round;
* an OTLP/HTTP exporter behind a batch processor (its own thread, so exporting
  never blocks the event loop) when ``settings.otlp_endpoint`` is set, or the
  exporter given (tests pass an ``InMemorySpanExporter``).

The GenAI semantic conventions are pinned (:data:`SEMCONV_VERSION`); the tracer
carries their schema URL so back ends can translate attribute names when the
conventions move on.
"""

from __future__ import annotations

import random
import threading

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from flightrec.contracts.settings import Settings

__all__ = [
    "SCHEMA_URL",
    "SEMCONV_VERSION",
    "CotIdGenerator",
    "metrics_url",
    "setup_metrics",
    "setup_tracing",
    "traces_url",
]

SEMCONV_VERSION = "1.41.0"
"""The OpenTelemetry semantic conventions the spans follow (the last release
that held the GenAI conventions in the main repository)."""

SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"


class CotIdGenerator(IdGenerator):
    """Random ids, except for the next span started after :meth:`expect`.

    The pending ids are per thread, and consumed by the next ``start_span`` on
    that thread; the span recorder sets and starts in one synchronous step.
    """

    def __init__(self) -> None:
        self._pending = threading.local()
        self._random = random.SystemRandom()

    def expect(self, trace_id: int | None, span_id: int | None) -> None:
        """Ids for the next span started on this thread (None: random)."""
        self._pending.trace_id = trace_id
        self._pending.span_id = span_id

    def clear(self) -> None:
        """Forget ids that were not consumed (the span had a parent, or failed)."""
        self._pending.trace_id = None
        self._pending.span_id = None

    def generate_span_id(self) -> int:
        """The expected span id, once; otherwise a random non-zero 64-bit id."""
        value: int | None = getattr(self._pending, "span_id", None)
        if value:
            self._pending.span_id = None
            return value
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        """The expected trace id, once; otherwise a random non-zero 128-bit id."""
        value: int | None = getattr(self._pending, "trace_id", None)
        if value:
            self._pending.trace_id = None
            return value
        return self._random.getrandbits(128) or 1


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector endpoint (``http://host:4318``)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


def setup_tracing(
    settings: Settings, exporter: SpanExporter | None = None, *, batch: bool | None = None
) -> TracerProvider:
    """A tracer provider for flightrec spans.

    With ``exporter``, spans go there (synchronously unless ``batch=True``: fine
    for in-memory exporters). Otherwise, with ``settings.otlp_endpoint``, they go
    to an OTLP/HTTP collector in batches. With neither, spans are made but not
    exported. Call ``shutdown()`` on the provider when done (flushes).
    """
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.app_id}),
        id_generator=CotIdGenerator(),
    )
    if exporter is None and settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint))
        batch = True if batch is None else batch
    if exporter is not None:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
    return provider


def metrics_url(endpoint: str) -> str:
    """The OTLP/HTTP metrics URL for a collector endpoint (``http://host:4318``)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/metrics") else f"{endpoint}/v1/metrics"


def setup_metrics(
    settings: Settings, reader: MetricReader | None = None, *, interval_s: float = 15.0
) -> MeterProvider:
    """A meter provider for the worker's runtime metrics (never the global one).

    With ``reader``, metrics are collected by it (tests pass an
    ``InMemoryMetricReader``); otherwise, with ``settings.otlp_endpoint``, they
    are exported over OTLP/HTTP every ``interval_s`` from the reader's own
    thread. With neither, instruments exist but nothing is read. Call
    ``shutdown()`` when done."""
    readers: list[MetricReader] = []
    if reader is not None:
        readers.append(reader)
    elif settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=metrics_url(settings.otlp_endpoint))
        readers.append(
            PeriodicExportingMetricReader(exporter, export_interval_millis=interval_s * 1000)
        )
    return MeterProvider(
        metric_readers=readers, resource=Resource.create({"service.name": settings.app_id})
    )
