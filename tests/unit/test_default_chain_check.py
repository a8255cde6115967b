"""Replay checks the hash chain unless told not to: a record changed after it was
sealed is reported NOT INTACT by the default wiring (``build_histories`` and
``CotReader`` without a ``chain_verifier``), and ``Replayer.verify`` does not
call it reproduced, although the replay itself finds nothing different.

Every other unit test passes its own verifier or none, so only these pin the
default that production (``ReplayService`` -> ``CotReader`` -> ``TraceIndex``) uses."""

from __future__ import annotations

from flightrec.agents.agent import Agent
from flightrec.agents.context import RunContext
from flightrec.agents.runner import run_agent
from flightrec.agents.steps import DecisionStep, ThoughtStep
from flightrec.contracts.events import CotEvent, ModelCall, SourceRef
from flightrec.contracts.settings import Settings
from flightrec.replay.history import RunHistory, build_histories
from flightrec.replay.reader import CotReader
from flightrec.replay.replayer import VOLATILE_FIELDS, Replayer
from flightrec.testing import MemoryRecorder
from flightrec.testing.models import ScriptedModel

from replay_support import CannedTools, OneAgentCatalog

AGENT = Agent(
    name="chain-checked",
    version="1",
    prompt_version="p1",
    instructions="decide",
    tools=(),
    max_steps=5,
)


async def _sealed_run() -> list[CotEvent]:
    """A run of the real runner, sealed by the shipped in-memory recorder."""
    model = ScriptedModel(
        [
            ThoughtStep(type="thought", reasoning="look at the amount"),
            DecisionStep(
                type="decision",
                reasoning="small amount",
                outcome="APPROVE",
                reasons=["amount 1"],
                conditions=[],
                confidence=0.9,
            ),
        ]
    )
    ctx = RunContext(
        trace_id=f"{9:032x}",
        attempt=1,
        source=SourceRef(topic="loan.applications", partition=0, offset=9),
    )
    recorder = MemoryRecorder()
    async for event in run_agent(
        AGENT,
        model=model,
        tools=CannedTools(),
        ctx=ctx,
        business_key="app-9",
        input_view={"amount": 1},
    ):
        await recorder.emit(event)
    return recorder.events


def _tamper_unseen_by_replay(events: list[CotEvent]) -> list[CotEvent]:
    """The first MODEL_CALL's latency changed after sealing: a field replay does
    not compare (it differs between a run and its replay), so only the chain
    can tell."""
    assert "latency_ms" in VOLATILE_FIELDS
    index = next(i for i, e in enumerate(events) if isinstance(e, ModelCall))
    tampered = list(events)
    tampered[index] = events[index].model_copy(update={"latency_ms": 99999.0})
    assert index + 1 < len(events), "the changed event needs a successor whose link breaks"
    return tampered


def _default_histories(events: list[CotEvent]) -> list[RunHistory]:
    """Histories as the library builds them by default, and as the reader that
    the replay service and trace index use does (built without a verifier)."""
    direct = build_histories(events)
    via_reader = CotReader(Settings()).histories(events)
    assert [h.trace_id for h in via_reader] == [h.trace_id for h in direct]
    return [*direct, *via_reader]


async def test_intact_sealed_run_is_intact_and_reproduces_by_default() -> None:
    # The control: without tampering the same wiring says INTACT and REPRODUCED,
    # so the test below fails only because of the chain.
    for history in _default_histories(await _sealed_run()):
        assert history.intact, history.problems()
        outcome = await Replayer(OneAgentCatalog(AGENT)).verify(history)
        assert outcome.status == "REPRODUCED", outcome
        assert outcome.chain_ok


async def test_record_changed_after_sealing_is_not_intact_by_default() -> None:
    events = _tamper_unseen_by_replay(await _sealed_run())
    for history in _default_histories(events):
        assert not history.intact
        attempt = history.attempts[0]
        assert not attempt.chain.ok
        assert attempt.chain.problem == "modified"
        assert any("hash chain BROKEN - modified" in p for p in history.problems())

        outcome = await Replayer(OneAgentCatalog(AGENT)).verify(history)
        assert outcome.status == "ERROR", outcome
        assert not outcome.chain_ok
        assert "NOT INTACT" in outcome.message
