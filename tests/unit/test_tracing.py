"""SpanRecorder: a run's CoT events become GenAI spans with the CoT trace and span
ids, event times, semantic-convention attributes, and no content by default."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from flightrec.contracts.events import CotEvent, ModelCall, RunStarted, ToolCall, ToolResult
from flightrec.contracts.settings import Settings
from flightrec.recorder.otel import SCHEMA_URL, setup_tracing, traces_url
from flightrec.recorder.tracing import SpanRecorder
from flightrec.testing.runs import synthetic_run, synthetic_trace_id


def record(events: list[CotEvent], settings: Settings) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = setup_tracing(settings, exporter)
    spans = SpanRecorder(settings, provider)
    for event in events:
        spans.observe(event)
    assert len(spans) == 0  # the run ended: nothing left open
    provider.shutdown()
    return list(exporter.get_finished_spans())


def by_name(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if (s.name or "").startswith(prefix)]


def ns(event: CotEvent) -> int:
    return int(event.ts.timestamp() * 1_000_000) * 1000


def test_run_becomes_agent_chat_and_tool_spans_with_cot_ids() -> None:
    trace_id = synthetic_trace_id(7)
    events = synthetic_run(trace_id)
    spans = record(events, Settings())
    assert sorted(s.name or "" for s in spans) == [
        "chat policy",
        "chat policy",
        "chat policy",
        "execute_tool credit_bureau",
        "invoke_agent loan-officer",
    ]
    assert {s.context.trace_id for s in spans if s.context} == {int(trace_id, 16)}

    started = next(e for e in events if isinstance(e, RunStarted))
    (agent,) = by_name(spans, "invoke_agent")
    assert agent.context is not None and agent.context.span_id == int(started.span_id, 16)
    assert agent.parent is None and agent.kind == SpanKind.INTERNAL
    assert agent.instrumentation_scope is not None
    assert agent.instrumentation_scope.schema_url == SCHEMA_URL
    attrs = dict(agent.attributes or {})
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.agent.name"] == "loan-officer"
    assert attrs["gen_ai.agent.version"] == "1.0.0"
    assert attrs["gen_ai.provider.name"] == "flightrec"
    assert attrs["gen_ai.usage.input_tokens"] == 300
    assert attrs["flightrec.decision.outcome"] == "APPROVE"
    assert (agent.start_time, agent.end_time) == (ns(events[0]), ns(events[-1]))

    calls = [e for e in events if isinstance(e, ModelCall)]
    chats = sorted(by_name(spans, "chat"), key=lambda s: s.start_time or 0)
    for call, chat in zip(calls, chats, strict=True):
        assert chat.context is not None and chat.context.span_id == int(call.span_id, 16)
        assert chat.parent is not None and chat.parent.span_id == int(started.span_id, 16)
        assert chat.kind == SpanKind.CLIENT
        assert chat.end_time == ns(call)
        assert chat.start_time == ns(call) - int(call.latency_ms * 1_000_000)
        chat_attrs = dict(chat.attributes or {})
        assert chat_attrs["gen_ai.operation.name"] == "chat"
        assert chat_attrs["gen_ai.request.model"] == "policy"
        assert chat_attrs["gen_ai.request.seed"] == 7
        assert chat_attrs["gen_ai.usage.input_tokens"] == 100
        assert chat_attrs["gen_ai.usage.output_tokens"] == 20
        assert "gen_ai.output.messages" not in chat_attrs

    tool_call = next(e for e in events if isinstance(e, ToolCall))
    result = next(e for e in events if isinstance(e, ToolResult))
    (tool,) = by_name(spans, "execute_tool")
    tool_attrs = dict(tool.attributes or {})
    assert tool.context is not None and tool.context.span_id == int(tool_call.span_id, 16)
    assert tool_attrs["gen_ai.tool.name"] == "credit_bureau"
    assert tool_attrs["gen_ai.tool.call.id"] == tool_call.call_id
    assert (tool.start_time, tool.end_time) == (ns(tool_call), ns(result))
    assert "gen_ai.tool.call.arguments" not in tool_attrs
    assert "gen_ai.tool.call.result" not in tool_attrs


def test_content_only_when_capture_is_on() -> None:
    events = synthetic_run(synthetic_trace_id(8))
    spans = record(events, Settings(capture_message_content=True))
    (tool,) = by_name(spans, "execute_tool")
    call = next(e for e in events if isinstance(e, ToolCall))
    assert dict(tool.attributes or {})["gen_ai.tool.call.arguments"] == call.arguments_json
    (agent,) = by_name(spans, "invoke_agent")
    assert [e.name for e in agent.events] == ["flightrec.thought"]


def test_errors_and_continued_traces() -> None:
    trace_id = synthetic_trace_id(9)
    parent = "00f067aa0ba902b7"
    events = [e.model_copy(update={"parent_span_id": parent}) for e in synthetic_run(trace_id)]
    index = next(i for i, e in enumerate(events) if isinstance(e, ToolResult))
    result = events[index]
    assert isinstance(result, ToolResult)
    events[index] = result.model_copy(
        update={"status": "error", "error_type": "ToolTimeoutError", "result_json": None}
    )
    spans = record(events, Settings())
    (agent,) = by_name(spans, "invoke_agent")
    assert agent.parent is not None and agent.parent.span_id == int(parent, 16)
    assert agent.context is not None and agent.context.trace_id == int(trace_id, 16)
    (tool,) = by_name(spans, "execute_tool")
    assert tool.status.status_code == StatusCode.ERROR
    assert dict(tool.attributes or {})["error.type"] == "ToolTimeoutError"


def test_abandoned_run_spans_are_closed() -> None:
    events = synthetic_run(synthetic_trace_id(10), complete=False)
    exporter = InMemorySpanExporter()
    provider = setup_tracing(Settings(), exporter)
    spans = SpanRecorder(Settings(), provider)
    for event in events:
        spans.observe(event)
    assert len(spans) == 1
    spans.close()
    (agent,) = by_name(list(exporter.get_finished_spans()), "invoke_agent")
    assert agent.status.status_code == StatusCode.ERROR


def test_traces_url() -> None:
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


def test_agent_span_names_the_business_key_of_current_and_legacy_runs() -> None:
    trace_id = synthetic_trace_id(8)
    for events in (
        synthetic_run(trace_id, business_key="CLM-4", agent="claims-triage"),
        synthetic_run(trace_id, business_key="CLM-4", agent="claims-triage", legacy=True),
    ):
        (agent,) = by_name(record(events, Settings()), "invoke_agent")
        attrs = dict(agent.attributes or {})
        assert attrs["flightrec.business_key"] == "CLM-4"
        assert "flightrec.application_id" not in attrs


def test_upstream_context_is_a_link_of_the_agent_span_not_its_parent() -> None:
    trace_id = synthetic_trace_id(11)
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    events = [
        e.model_copy(update={"upstream_traceparent": upstream}) if isinstance(e, RunStarted) else e
        for e in synthetic_run(trace_id)
    ]
    spans = record(events, Settings())
    assert {s.context.trace_id for s in spans if s.context} == {int(trace_id, 16)}
    (agent,) = by_name(spans, "invoke_agent")
    assert agent.parent is None
    (link,) = agent.links
    assert link.context.trace_id == int("0af7651916cd43dd8448eb211c80319c", 16)
    assert link.context.span_id == int("b7ad6b7169203331", 16)
    assert link.context.is_remote and not link.context.trace_flags.sampled  # flags as sent
    # Without an upstream context the agent span has no link.
    (plain,) = by_name(record(synthetic_run(synthetic_trace_id(12)), Settings()), "invoke_agent")
    assert list(plain.links) == []
