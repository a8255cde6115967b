"""``SpanRecorder``: OpenTelemetry spans made from the CoT event stream.

Observability wraps the agent loop from outside: nothing in the runner knows
about spans. The recorder hands every (PII-scrubbed, sealed) event to
:meth:`SpanRecorder.observe`, which turns a run into

* ``invoke_agent {agent}`` (INTERNAL) from ``RUN_STARTED`` to ``RUN_COMPLETED`` /
  ``RUN_FAILED``, linked (not parented) to the trace context the input arrived
  with (``RUN_STARTED.upstream_traceparent``),
* ``chat {model}`` (CLIENT) per ``MODEL_CALL``, timed ``ts - latency .. ts``,
* ``execute_tool {tool}`` (INTERNAL) per ``TOOL_CALL`` / ``TOOL_RESULT`` pair,

with the GenAI attributes of the pinned semantic conventions
(:data:`flightrec.recorder.otel.SEMCONV_VERSION`). The spans take the CoT trace id, and
(with :class:`~flightrec.recorder.otel.CotIdGenerator`) the span id of the event that
opens them. Message content (reasoning, model output, tool arguments and
results) is put on spans only when ``settings.capture_message_content`` is on.
Span times come from the events, not from the clock of this process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from flightrec.contracts.events import (
    CotEventBase,
    Decision,
    ModelCall,
    RunCompleted,
    RunFailed,
    RunStarted,
    Thought,
    ToolCall,
    ToolResult,
    business_key_of,
)
from flightrec.contracts.headers import TRACEPARENT
from flightrec.contracts.settings import Settings
from flightrec.recorder.otel import SCHEMA_URL, SEMCONV_VERSION, CotIdGenerator

__all__ = ["SpanRecorder"]

log = logging.getLogger(__name__)

# Attribute names of the GenAI semantic conventions (pinned version, see otel.py).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_SEED = "gen_ai.request.seed"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
AGENT_NAME = "gen_ai.agent.name"
AGENT_VERSION = "gen_ai.agent.version"
CONVERSATION_ID = "gen_ai.conversation.id"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(ts: datetime) -> int:
    # Exact integer arithmetic: float timestamps lose microseconds.
    return (ts - _EPOCH) // timedelta(microseconds=1) * 1000


def _remote_parent(trace_id: str, span_id: str) -> Context:
    parent = SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


_W3C = TraceContextTextMapPropagator()


def _upstream_links(value: str | None) -> list[Link]:
    """A link to the trace context a run's input arrived with (W3C ``traceparent``
    text), if there is a valid one. A link, not a parent: the run's spans stay
    in the run's own trace, the trace id of its CoT events."""
    if value is None:
        return []
    context = trace.get_current_span(_W3C.extract({TRACEPARENT: value})).get_span_context()
    return [Link(context)] if context.is_valid else []


@dataclass
class _Run:
    span: Span | None
    context: Context
    provider: str
    tools: dict[str, Span] = field(default_factory=dict)


class SpanRecorder:
    """Turns the CoT events of many concurrent runs into spans (call from one loop)."""

    def __init__(self, settings: Settings, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer(
            "flightrec.recorder", SEMCONV_VERSION, schema_url=SCHEMA_URL
        )
        generator = provider.id_generator
        self._ids = generator if isinstance(generator, CotIdGenerator) else None
        self._capture = settings.capture_message_content
        self._runs: dict[tuple[str, int], _Run] = {}

    # ------------------------------------------------------------------ spans

    def _start(
        self,
        name: str,
        event: CotEventBase,
        parent: Context | None,
        kind: SpanKind,
        start_ns: int,
        attributes: dict[str, AttributeValue],
        links: Sequence[Link] = (),
    ) -> Span:
        if self._ids is not None:
            self._ids.expect(int(event.trace_id, 16), int(event.span_id, 16))
        if parent is None and self._ids is None:
            # Without our id generator the trace id can only come from a parent.
            parent = _remote_parent(event.trace_id, event.span_id)
        try:
            return self._tracer.start_span(
                name,
                context=parent,
                kind=kind,
                attributes=attributes,
                links=links,
                start_time=start_ns,
            )
        finally:
            if self._ids is not None:
                self._ids.clear()

    def observe(self, event: CotEventBase) -> None:
        """Advance the spans of the event's run; never raises (tracing must not
        stop the recording)."""
        try:
            self._observe(event)
        except Exception:
            log.exception("could not turn %s event into a span", getattr(event, "kind", "?"))

    def _observe(self, event: CotEventBase) -> None:
        key = (event.trace_id, event.attempt)
        if isinstance(event, RunStarted):
            self._run_started(key, event)
            return
        run = self._runs.get(key)
        if run is None:  # events of a run whose start we did not see: still traced
            parent = (
                _remote_parent(event.trace_id, event.parent_span_id)
                if event.parent_span_id
                else None
            )
            run = self._runs[key] = _Run(span=None, context=parent or Context(), provider="")
        if isinstance(event, ModelCall):
            self._model_call(run, event)
        elif isinstance(event, ToolCall):
            self._tool_call(run, event)
        elif isinstance(event, ToolResult):
            self._tool_result(run, event)
        elif isinstance(event, Thought):
            if run.span is not None and self._capture:
                run.span.add_event(
                    "flightrec.thought", {"content": event.reasoning}, timestamp=_ns(event.ts)
                )
        elif isinstance(event, Decision):
            if run.span is not None:
                run.span.set_attribute("flightrec.decision.outcome", event.outcome)
                run.span.set_attribute("flightrec.decision.confidence", event.confidence)
        elif isinstance(event, RunCompleted | RunFailed):
            self._run_ended(key, run, event)

    def _run_started(self, key: tuple[str, int], event: RunStarted) -> None:
        # The runner starts every run as its trace's root; a RUN_STARTED with a
        # parent was recorded when runs still continued their input's trace.
        parent = (
            _remote_parent(event.trace_id, event.parent_span_id) if event.parent_span_id else None
        )
        attributes: dict[str, AttributeValue] = {
            OPERATION: "invoke_agent",
            PROVIDER: event.gen_ai_provider_name,
            AGENT_NAME: event.agent,
            AGENT_VERSION: event.agent_version,
            REQUEST_MODEL: event.gen_ai_request_model,
            CONVERSATION_ID: event.trace_id,
            "flightrec.attempt": event.attempt,
            "flightrec.prompt_version": event.prompt_version,
            "flightrec.model_profile": event.model_profile,
        }
        business_key = business_key_of(event)
        if business_key is not None:  # OpenTelemetry attributes cannot be None
            attributes["flightrec.business_key"] = business_key
        span = self._start(
            f"invoke_agent {event.agent}",
            event,
            parent,
            SpanKind.INTERNAL,
            _ns(event.ts),
            attributes,
            _upstream_links(event.upstream_traceparent),
        )
        self._runs[key] = _Run(
            span=span,
            context=trace.set_span_in_context(span),
            provider=event.gen_ai_provider_name,
        )

    def _model_call(self, run: _Run, event: ModelCall) -> None:
        attributes: dict[str, AttributeValue] = {
            OPERATION: event.gen_ai_operation_name,
            PROVIDER: event.gen_ai_provider_name,
            REQUEST_MODEL: event.gen_ai_request_model,
            FINISH_REASONS: tuple(event.gen_ai_response_finish_reasons),
            INPUT_TOKENS: event.gen_ai_usage_input_tokens,
            OUTPUT_TOKENS: event.gen_ai_usage_output_tokens,
            "flightrec.call_attempt": event.call_attempt,
        }
        optional: dict[str, AttributeValue | None] = {
            RESPONSE_MODEL: event.gen_ai_response_model,
            RESPONSE_ID: event.gen_ai_response_id,
            REQUEST_TEMPERATURE: event.gen_ai_request_temperature,
            REQUEST_SEED: event.gen_ai_request_seed,
        }
        attributes.update({k: v for k, v in optional.items() if v is not None})
        if self._capture and event.output_json is not None:
            attributes[OUTPUT_MESSAGES] = event.output_json
        end = event.ts
        span = self._start(
            f"{event.gen_ai_operation_name} {event.gen_ai_request_model}",
            event,
            run.context,
            SpanKind.CLIENT,
            _ns(end - timedelta(milliseconds=event.latency_ms)),
            attributes,
        )
        if event.status == "error":
            span.set_attribute(ERROR_TYPE, event.error_type or "_OTHER")
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=_ns(end))

    def _tool_attributes(self, event: ToolCall | ToolResult) -> dict[str, AttributeValue]:
        return {
            OPERATION: "execute_tool",
            TOOL_NAME: event.tool,
            TOOL_CALL_ID: event.call_id,
            TOOL_TYPE: "function",
        }

    def _tool_call(self, run: _Run, event: ToolCall) -> None:
        attributes = self._tool_attributes(event)
        if self._capture:
            attributes[TOOL_ARGUMENTS] = event.arguments_json
        run.tools[event.call_id] = self._start(
            f"execute_tool {event.tool}",
            event,
            run.context,
            SpanKind.INTERNAL,
            _ns(event.ts),
            attributes,
        )

    def _tool_result(self, run: _Run, event: ToolResult) -> None:
        span = run.tools.pop(event.call_id, None)
        if span is None:  # the call was not seen: time the span from the latency
            span = self._start(
                f"execute_tool {event.tool}",
                event,
                run.context,
                SpanKind.INTERNAL,
                _ns(event.ts - timedelta(milliseconds=event.latency_ms)),
                self._tool_attributes(event),
            )
        if self._capture and event.result_json is not None:
            span.set_attribute(TOOL_RESULT, event.result_json)
        if event.status == "error":
            span.set_attribute(ERROR_TYPE, event.error_type or "_OTHER")
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=_ns(event.ts))

    def _run_ended(self, key: tuple[str, int], run: _Run, event: RunCompleted | RunFailed) -> None:
        end = _ns(event.ts)
        for tool_span in run.tools.values():  # a call without a result: the run ended first
            tool_span.set_attribute(ERROR_TYPE, "flightrec.no_result")
            tool_span.set_status(Status(StatusCode.ERROR))
            tool_span.end(end_time=end)
        self._runs.pop(key, None)
        if run.span is None:
            return
        if isinstance(event, RunCompleted):
            run.span.set_attribute(INPUT_TOKENS, event.gen_ai_usage_input_tokens)
            run.span.set_attribute(OUTPUT_TOKENS, event.gen_ai_usage_output_tokens)
            run.span.set_attribute("flightrec.steps", event.steps)
        else:
            run.span.set_attribute(ERROR_TYPE, event.error_type)
            run.span.set_status(Status(StatusCode.ERROR, event.reason if self._capture else None))
        run.span.end(end_time=end)

    # -------------------------------------------------------------- lifecycle

    def abandon(self, trace_id: str, attempt: int, reason: str = "abandoned") -> None:
        """End the open spans of a run that will not finish (marked as errors)."""
        run = self._runs.pop((trace_id, attempt), None)
        if run is None:
            return
        for span in [*run.tools.values(), *([run.span] if run.span else [])]:
            span.set_attribute(ERROR_TYPE, reason)
            span.set_status(Status(StatusCode.ERROR))
            span.end()

    def close(self) -> None:
        """End every open span (shutdown)."""
        for trace_id, attempt in list(self._runs):
            self.abandon(trace_id, attempt, "flightrec.recorder_closed")

    def __len__(self) -> int:
        return len(self._runs)
