"""Failure kinds: one closed set, derived from the error classes; events refuse
any other ``error_type``; recorded values outside the set are read verbatim and
replay unchanged."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from flightrec.agents.agent import Agent
from flightrec.agents.context import RunContext
from flightrec.agents.model import ModelAttempt
from flightrec.agents.runner import run_agent
from flightrec.agents.steps import DecisionStep, ToolCallStep
from flightrec.contracts import errors
from flightrec.contracts.avro_mapping import cot_from_avro, cot_to_avro
from flightrec.contracts.chain import canonical_text
from flightrec.contracts.errors import FlightrecError, ToolHTTPError
from flightrec.contracts.events import CotEvent, SourceRef, ToolResult, read_cot_event
from flightrec.contracts.failures import (
    CLASSLESS_KINDS,
    FAILURE_ROOTS,
    FailureKind,
    LegacyFailureKind,
    failure_kind,
)
from flightrec.testing.models import ScriptedModel
from flightrec.testing.samples import sample_cot_events
from flightrec.tools.base import ToolOutcome

from replay_support import CannedTools, assert_reproduces

FAILURE_CLASSES = sorted(
    (
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if cls.__module__ == errors.__name__ and issubclass(cls, FAILURE_ROOTS)
    ),
    key=lambda cls: cls.__name__,
)


def _sample(kind: str) -> Any:
    return next(e for e in sample_cot_events() if getattr(e, "kind", None) == kind)


def test_the_set_is_the_failure_classes_plus_the_classless_kinds() -> None:
    assert {FailureKind(cls.__name__) for cls in FAILURE_CLASSES} == set(FailureKind) - set(
        CLASSLESS_KINDS
    )
    assert not any(hasattr(errors, kind.value) for kind in CLASSLESS_KINDS)


@pytest.mark.parametrize("cls", FAILURE_CLASSES, ids=lambda cls: cls.__name__)
def test_each_failure_class_maps_to_its_own_kind(cls: type[FlightrecError]) -> None:
    assert failure_kind(cls("failed")) == cls.__name__


def test_other_exceptions_are_unexpected_and_subclasses_take_their_base_kind() -> None:
    class BureauDown(ToolHTTPError):
        pass

    assert failure_kind(BureauDown("down")) is FailureKind.TOOL_HTTP
    assert failure_kind(ValueError("a tool's own bug")) is FailureKind.UNEXPECTED
    assert failure_kind(errors.ConfigError("not a run failure")) is FailureKind.UNEXPECTED


@pytest.mark.parametrize("kind", ["MODEL_CALL", "TOOL_RESULT", "RUN_FAILED"])
def test_an_event_with_an_unknown_kind_cannot_be_built(kind: str) -> None:
    sample = _sample(kind)
    fields = {**sample.model_dump(), "error_type": "ToolTimeoutEror"}  # sic: the typo
    with pytest.raises(ValidationError, match="is not a failure kind"):
        type(sample)(**fields)
    with pytest.raises(ValidationError):
        type(sample)(**{**fields, "error_type": 408})
    # The same text spelled right is stored as the member.
    built = type(sample)(**{**fields, "error_type": "ToolTimeoutError"})
    assert built.error_type is FailureKind.TOOL_TIMEOUT


def test_outcomes_and_attempts_refuse_unknown_kinds_too() -> None:
    with pytest.raises(ValidationError):
        ToolOutcome(status="error", error_type="RuntimeError")
    with pytest.raises(ValidationError):
        ModelAttempt(request_hash="a" * 64, call_attempt=1, latency_ms=0, error_type="Oops")


def test_a_recorded_kind_outside_the_set_is_read_verbatim() -> None:
    recorded = {**_sample("TOOL_RESULT").model_dump(mode="json"), "error_type": "RuntimeError"}
    text = json.dumps(recorded)
    for event in (read_cot_event(recorded), read_cot_event(text)):
        assert isinstance(event, ToolResult)
        assert type(event.error_type) is LegacyFailureKind
        assert event.error_type == "RuntimeError"
        # Same text in the chain's canonical form and in Avro: hashes still hold.
        assert json.loads(canonical_text(event))["error_type"] == "RuntimeError"
        datum = cot_to_avro(event)
        assert type(datum["tool_result"]["error_type"]) is str
        again = cot_from_avro(datum)
        assert again == event and type(again.error_type) is LegacyFailureKind
        # The value read may be written again (replay hands it back as recorded);
        # the same text typed in may not.
        fields = event.model_dump()
        assert ToolResult(**{**fields, "error_type": event.error_type}) == event
        with pytest.raises(ValidationError):
            ToolResult(**fields)


def test_members_serialise_as_plain_text() -> None:
    event = _sample("RUN_FAILED")
    assert event.error_type is FailureKind.BUDGET_EXCEEDED
    assert type(event.model_dump()["error_type"]) is str
    assert event.model_dump(mode="json")["error_type"] == "BudgetExceededError"


# ---------------------------------------------- a legacy kind replays unchanged

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
AGENT = Agent(
    name="legacy", version="1", prompt_version="p1", instructions="decide", tools=("lookup",)
)


async def test_a_run_recorded_with_a_legacy_kind_reproduces() -> None:
    model = ScriptedModel(
        [
            ToolCallStep(type="tool_call", reasoning="look", tool="lookup", arguments_json="{}"),
            DecisionStep(
                type="decision",
                reasoning="no data",
                outcome="REFER",
                reasons=["lookup failed"],
                conditions=[],
                confidence=0.5,
            ),
        ]
    )
    ctx = RunContext(
        trace_id="ef" * 16,
        attempt=1,
        source=SourceRef(topic="t", partition=0, offset=1),
        clock=lambda: NOW,
    )
    live = [
        e
        async for e in run_agent(
            AGENT,
            model=model,
            # A toolset as it was before the set was closed: it named the
            # tool's own exception class as the kind.
            tools=CannedTools(
                "lookup",
                outcome=ToolOutcome(
                    status="error",
                    error_type=LegacyFailureKind("RuntimeError"),
                    error_message="boom",
                ),
            ),
            ctx=ctx,
            business_key="app-1",
            input_view={"application_id": "app-1"},
        )
    ]
    # What a reader finds in the log: JSON text, read back as recorded events.
    recorded: list[CotEvent] = [read_cot_event(e.model_dump_json()) for e in live]
    (result,) = [e for e in recorded if e.kind == "TOOL_RESULT"]
    assert type(result.error_type) is LegacyFailureKind and result.error_type == "RuntimeError"
    await assert_reproduces(AGENT, recorded)
