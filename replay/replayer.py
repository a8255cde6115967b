"""``Replayer``: verify a recorded run, or re-evaluate it under a candidate configuration.

*verify* re-runs the recorded agent with the same runner the worker uses, over
the recorded input (PII already tokens), with :class:`ReplayModel` and a strict
:class:`ReplayToolset`: nothing live is called. Every event the runner yields
is compared with the recorded event at the same position (time-dependent
fields aside); the first difference, a request the recording cannot answer, or
a recording longer than the replay, is a divergence at a named step.

*reevaluate* runs a candidate (model profile, prompt version and/or agent
version) over the recorded input; tool calls that match the recording are
answered from it, others live (only with live tools enabled) or as a
``ToolUnavailable`` error. It reports old and new decision and the first step
where the new run differs from the recording.

Which agent, model and tools a record names is the :class:`AgentCatalog`'s job,
so this module does not hard-code the loan agent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from flightrec.agents.context import RunContext
from flightrec.agents.model import Model
from flightrec.contracts.chain import Integrity
from flightrec.contracts.errors import DivergenceError, ReplayError
from flightrec.contracts.events import (
    CotEvent,
    Decision,
    ModelCall,
    ReplayResult,
    RunStarted,
    business_key_of,
    current_form,
)
from flightrec.replay.history import Attempt, RunHistory
from flightrec.replay.replay_model import ReplayModel
from flightrec.replay.replay_tools import ReplayToolset
from flightrec.tools.base import ToolExecutor

__all__ = [
    "VOLATILE_FIELDS",
    "AgentCatalog",
    "Candidate",
    "ReevaluateOutcome",
    "ReplayableAgent",
    "Replayer",
    "RunFn",
    "VerifyOutcome",
    "event_diff",
    "summarize_transitions",
]

VOLATILE_FIELDS = frozenset(
    {
        "ts",
        "prev_hash",
        "signing_key_id",
        "signature",
        "latency_ms",
        "duration_ms",
        "event_id",
        "span_id",
        "parent_span_id",
    }
)
"""Fields that legitimately differ between a run and its replay (time, chain,
signatures, ids): a replay is compared with the record, not sealed into it."""

RunFn = Callable[..., AsyncIterator[CotEvent]]
"""The runner: ``run_agent(agent, *, model, tools, ctx, business_key, input_view, pii_vault)``."""


class ReplayableAgent(Protocol):
    """An agent definition as replay sees it (``flightrec.agents.agent.Agent`` is one).

    The runner is handed the whole value; replay itself reads only its name
    and the tool allow-list.
    """

    @property
    def name(self) -> str:
        """The agent's name."""
        ...

    @property
    def tools(self) -> tuple[str, ...]:
        """The tools the agent may call."""
        ...


class AgentCatalog(Protocol):
    """Resolves what a record names into runnable parts."""

    def agent(self, name: str, version: str, prompt_version: str, profile: str) -> ReplayableAgent:
        """The agent definition (``flightrec.agents.agent.Agent``) for these coordinates."""
        ...

    def tool_descriptions(self, agent: ReplayableAgent) -> list[dict[str, Any]]:
        """What the live toolset's ``describe()`` returns for ``agent`` (no tool is called)."""
        ...

    def model(self, agent: ReplayableAgent, profile: str) -> Model:
        """A live model for re-evaluating ``agent`` under ``profile``."""
        ...

    def live_tools(self, agent: ReplayableAgent) -> ToolExecutor:
        """The agent's real tools (used by re-evaluation with live tools enabled only)."""
        ...


@dataclass(frozen=True)
class Candidate:
    """What changes in a re-evaluation; None keeps the recorded value."""

    model_profile: str | None = None
    prompt_version: str | None = None
    agent_version: str | None = None
    live_tools: bool = False


@dataclass(frozen=True)
class VerifyOutcome:
    """Result of verifying one trace."""

    trace_id: str
    status: Literal["REPRODUCED", "DIVERGED", "ABORTED", "ERROR"]
    attempt: int
    step: int | None = None
    expected: str | None = None
    actual: str | None = None
    message: str = ""
    chain_ok: bool = True

    def to_result(self, started: RunStarted | None, first: CotEvent, ts: datetime) -> ReplayResult:
        """The ``ReplayResult`` record of this outcome."""
        profile = started.model_profile if started is not None else "unknown"
        return _replay_result(self, "VERIFY", ts, first, profile, first_diff_step=self.step)


@dataclass(frozen=True)
class ReevaluateOutcome:
    """Result of re-evaluating one trace under a candidate."""

    trace_id: str
    status: Literal["CHANGED", "UNCHANGED", "ABORTED", "ERROR"]
    attempt: int
    agent: str
    agent_version: str
    prompt_version: str
    model_profile: str
    old: str | None
    new: str | None
    first_diff_step: int | None
    expected: str | None = None
    actual: str | None = None
    message: str = ""
    live_tool_calls: int = 0
    unavailable_tool_calls: int = 0

    @property
    def transition(self) -> str | None:
        """``"APPROVE->REFER"`` when the decision changed, else None."""
        if self.status != "CHANGED":
            return None
        return f"{self.old or 'NONE'}->{self.new or 'NONE'}"

    def to_result(self, ts: datetime) -> ReplayResult:
        """The ``ReplayResult`` record of this outcome."""
        return _replay_result(
            self,
            "REEVALUATE",
            ts,
            self,
            self.model_profile,
            first_diff_step=self.first_diff_step,
            old_outcome=self.old,
            new_outcome=self.new,
        )


class _AgentVersions(Protocol):
    """The agent coordinates a replay record names (a recorded event, or a candidate)."""

    @property
    def agent(self) -> str: ...

    @property
    def agent_version(self) -> str: ...

    @property
    def prompt_version(self) -> str: ...


def _replay_result(
    outcome: VerifyOutcome | ReevaluateOutcome,
    mode: Literal["VERIFY", "REEVALUATE"],
    ts: datetime,
    agent: _AgentVersions,
    model_profile: str,
    *,
    first_diff_step: int | None,
    old_outcome: str | None = None,
    new_outcome: str | None = None,
) -> ReplayResult:
    """The ``ReplayResult`` record of ``outcome``, under a new replay id."""
    return ReplayResult(
        replay_id=uuid.uuid4().hex,
        replay_of=outcome.trace_id,
        mode=mode,
        status=outcome.status,
        attempt=outcome.attempt,
        agent=agent.agent,
        agent_version=agent.agent_version,
        prompt_version=agent.prompt_version,
        model_profile=model_profile,
        old_outcome=old_outcome,
        new_outcome=new_outcome,
        first_diff_step=first_diff_step,
        expected=outcome.expected,
        actual=outcome.actual,
        message=outcome.message,
        ts=ts,
    )


def _comparable(event: CotEvent) -> dict[str, Any]:
    data = event.model_dump(mode="json")
    return {k: v for k, v in data.items() if k not in VOLATILE_FIELDS}


def _same_fields(expected: CotEvent, actual: CotEvent) -> bool:
    # Field values straight from the models' __dict__, compared as dicts (in C).
    want, got = dict(expected.__dict__), dict(actual.__dict__)
    for name in VOLATILE_FIELDS:
        want.pop(name, None)
        got.pop(name, None)
    return want == got


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 300 else text[:300] + "..."


def event_diff(expected: CotEvent, actual: CotEvent) -> tuple[str, str] | None:
    """Readable (expected, actual) of the fields that differ, or None when equal."""
    if type(expected) is type(actual) and _same_fields(expected, actual):
        # The common case in verify; dumping both events to JSON is only
        # needed to show a difference (it was a third of verify's own time).
        return None
    want, got = _comparable(expected), _comparable(actual)
    keys = [k for k in dict.fromkeys([*want, *got]) if want.get(k) != got.get(k)]
    if not keys:
        return None
    head_e = f"seq {expected.seq} {expected.kind}"
    head_a = f"seq {actual.seq} {actual.kind}"
    return (
        head_e + ": " + ", ".join(f"{k}={_show(want.get(k))}" for k in keys),
        head_a + ": " + ", ".join(f"{k}={_show(got.get(k))}" for k in keys),
    )


class _RecordedTime:
    """Replay's clock: the recorded times, in order, one per event the runner makes.

    ``now`` hands out the time of the next event (past the end it stays put),
    so anything the agent derives from "now" sees what the live run saw.
    ``elapsed`` is the time between the first event and the one the runner is
    about to make, which is when the live run checked its deadline: a run that
    ran out of time live runs out at the same step in replay.

    One exception: the ``MODEL_CALL`` events of a turn are stamped after the
    model answered, but the live run checked its deadline before it asked. A
    turn cut short by the deadline is stamped past it, so judging the check on
    that stamp would end the replay one turn early. Before a turn ``elapsed``
    therefore goes back by the recorded latency of the turn's tries (not before
    the previous event): that is no later than when the last try started,
    which the live model only does before the deadline.
    """

    def __init__(self, attempt: Attempt) -> None:
        events = attempt.events
        self._times = [e.ts for e in events]
        self._next = 0
        # Index of each event that opens a model turn -> the turn's tries' latency.
        self._turn_latency: dict[int, timedelta] = {}
        opener: int | None = None
        for i, event in enumerate(events):
            if not isinstance(event, ModelCall):
                opener = None
            elif event.call_attempt == 1 or opener is None:
                opener = i
                self._turn_latency[i] = timedelta(milliseconds=event.latency_ms)
            else:
                self._turn_latency[opener] += timedelta(milliseconds=event.latency_ms)

    def now(self) -> datetime:
        i = min(self._next, len(self._times) - 1)
        self._next += 1
        return self._times[i]

    def elapsed(self) -> float:
        i = min(self._next, len(self._times) - 1)
        upcoming = self._times[i]
        latency = self._turn_latency.get(i) if self._next == i else None
        if latency:
            upcoming = max(self._times[max(i - 1, 0)], upcoming - latency)
        return (upcoming - self._times[0]).total_seconds()


def _key_of(started: RunStarted) -> str:
    return business_key_of(started) or ""


def _as_written_today(attempt: Attempt, started: RunStarted) -> list[CotEvent]:
    """The attempt's events in the form the runner writes them today, so a run
    recorded before the envelope carried the business key compares field by
    field with its re-run (``current_form``; the chain was verified on the
    events as recorded)."""
    key = _key_of(started)
    return [current_form(event, key) for event in attempt.events]


def _input_of(started: RunStarted) -> dict[str, Any]:
    value = json.loads(started.input_json)
    return value if isinstance(value, dict) else {"input": value}


class Replayer:
    """Runs verifications and re-evaluations of recorded histories."""

    def __init__(self, catalog: AgentCatalog, *, runner: RunFn | None = None) -> None:
        self._catalog = catalog
        if runner is None:
            from flightrec.agents.runner import run_agent  # the live runner, same code path

            runner = run_agent
        self._run: RunFn = runner

    def _context(self, history: RunHistory, attempt: Attempt, started: RunStarted) -> RunContext:
        recorded = _RecordedTime(attempt)
        return RunContext(
            trace_id=history.trace_id,
            attempt=attempt.number,
            source=started.source,
            clock=recorded.now,
            upstream_traceparent=started.upstream_traceparent,
            elapsed=recorded.elapsed,
        )

    # ---------------------------------------------------------------- verify

    async def verify(self, history: RunHistory) -> VerifyOutcome:
        """Re-run the authoritative attempt offline and compare it with the record."""
        attempt = history.authoritative
        if attempt is None:
            latest = history.latest
            return VerifyOutcome(
                history.trace_id,
                "ABORTED",
                latest.number,
                message="no complete attempt: the run was interrupted and has no decision of record",
                chain_ok=latest.chain.ok,
            )
        outcome = await self._verify_attempt(history, attempt)
        if attempt.intact:
            return outcome
        # A broken record is reported as such whatever the replay found: the
        # replay compared against events that may not be the ones written.
        problem = "; ".join(attempt.problems())
        bad_seq = attempt.chain.seq
        step = next((e.step for e in attempt.events if e.seq == bad_seq), outcome.step)
        return VerifyOutcome(
            history.trace_id,
            "ERROR",
            attempt.number,
            step=step,
            expected=outcome.expected,
            actual=outcome.actual,
            message=f"record {Integrity.NOT_INTACT}: {problem}; replay: {outcome.status}",
            chain_ok=attempt.chain.ok,
        )

    async def _verify_attempt(self, history: RunHistory, attempt: Attempt) -> VerifyOutcome:
        started = attempt.run_started
        if started is None:
            return VerifyOutcome(
                history.trace_id, "ERROR", attempt.number, message="RUN_STARTED missing"
            )
        recorded = _as_written_today(attempt, started)
        try:
            agent = self._catalog.agent(
                started.agent, started.agent_version, started.prompt_version, started.model_profile
            )
        except ReplayError as exc:
            # This trace only: the rest of a batch still replays.
            return VerifyOutcome(
                history.trace_id, "ERROR", attempt.number, message=f"cannot replay: {exc}"
            )
        model = ReplayModel(recorded)
        tools = ReplayToolset(
            recorded,
            descriptions=self._catalog.tool_descriptions(agent),
            allowed=frozenset(started.tools),
            mode="strict",
        )
        produced = 0
        try:
            async for event in self._run(
                agent,
                model=model,
                tools=tools,
                ctx=self._context(history, attempt, started),
                business_key=_key_of(started),
                input_view=_input_of(started),
                pii_vault=None,
            ):
                if produced >= len(recorded):
                    return VerifyOutcome(
                        history.trace_id,
                        "DIVERGED",
                        attempt.number,
                        step=event.step,
                        expected="end of the recorded run",
                        actual=f"seq {event.seq} {event.kind}",
                        message="the replay produced more events than were recorded",
                    )
                diff = event_diff(recorded[produced], event)
                if diff is not None:
                    return VerifyOutcome(
                        history.trace_id,
                        "DIVERGED",
                        attempt.number,
                        step=recorded[produced].step,
                        expected=diff[0],
                        actual=diff[1],
                        message="the replayed event differs from the recorded one",
                    )
                produced += 1
        except DivergenceError as exc:
            return VerifyOutcome(
                history.trace_id,
                "DIVERGED",
                attempt.number,
                step=exc.step,
                expected=str(exc.expected),
                actual=str(exc.actual),
                message=exc.message,
            )
        if produced < len(recorded):
            missing = recorded[produced]
            return VerifyOutcome(
                history.trace_id,
                "DIVERGED",
                attempt.number,
                step=missing.step,
                expected=f"seq {missing.seq} {missing.kind}",
                actual="end of the replayed run",
                message="the replay ended before the recorded run did",
            )
        return VerifyOutcome(history.trace_id, "REPRODUCED", attempt.number)

    # ------------------------------------------------------------ reevaluate

    async def reevaluate(self, history: RunHistory, candidate: Candidate) -> ReevaluateOutcome:
        """Run ``candidate`` over the recorded input; compare its decision with the record's."""
        attempt = history.authoritative
        first = history.first_event
        started = history.run_started
        profile = candidate.model_profile or (started.model_profile if started else "standard")
        agent_version = candidate.agent_version or first.agent_version
        prompt_version = candidate.prompt_version or first.prompt_version
        base: dict[str, Any] = {
            "trace_id": history.trace_id,
            "agent": first.agent,
            "agent_version": agent_version,
            "prompt_version": prompt_version,
            "model_profile": profile,
        }
        if attempt is None or started is None:
            return ReevaluateOutcome(
                **base,
                status="ABORTED",
                attempt=history.latest.number,
                old=None,
                new=None,
                first_diff_step=None,
                message="no complete attempt to re-evaluate",
            )
        try:
            agent = self._catalog.agent(first.agent, agent_version, prompt_version, profile)
        except ReplayError as exc:
            return ReevaluateOutcome(
                **base,
                status="ERROR",
                attempt=attempt.number,
                old=attempt.outcome,
                new=None,
                first_diff_step=None,
                message=f"cannot re-evaluate: {exc}",
            )
        recorded = _as_written_today(attempt, started)
        tools = ReplayToolset(
            recorded,
            descriptions=self._catalog.tool_descriptions(agent),
            allowed=frozenset(agent.tools),
            mode="lenient",
            live=self._catalog.live_tools(agent) if candidate.live_tools else None,
        )
        new_events: list[CotEvent] = []
        async for event in self._run(
            agent,
            model=self._catalog.model(agent, profile),
            tools=tools,
            ctx=self._context(history, attempt, started),
            business_key=_key_of(started),
            input_view=_input_of(started),
            pii_vault=None,
        ):
            new_events.append(event)
        first_diff: int | None = None
        expected: str | None = None
        actual: str | None = None
        for index, event in enumerate(new_events):
            old_event = recorded[index] if index < len(recorded) else None
            if old_event is None:
                first_diff, expected, actual = (
                    event.step,
                    "end of the recorded run",
                    str(event.kind),
                )
                break
            diff = event_diff(old_event, event)
            if diff is not None:
                first_diff, (expected, actual) = old_event.step, diff
                break
        else:
            if len(new_events) < len(recorded):
                missing = recorded[len(new_events)]
                first_diff, expected, actual = missing.step, str(missing.kind), "end of the new run"
        new_decision = next((e for e in reversed(new_events) if isinstance(e, Decision)), None)
        new = new_decision.outcome if new_decision is not None else None
        old = attempt.outcome
        return ReevaluateOutcome(
            **base,
            status="CHANGED" if new != old else "UNCHANGED",
            attempt=attempt.number,
            old=old,
            new=new,
            first_diff_step=first_diff,
            expected=expected,
            actual=actual,
            live_tool_calls=tools.live_calls,
            unavailable_tool_calls=tools.unavailable_calls,
        )


def summarize_transitions(outcomes: Sequence[ReevaluateOutcome]) -> Mapping[str, int]:
    """Count ``"OLD->NEW"`` transitions of changed decisions."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.transition is not None:
            counts[outcome.transition] = counts.get(outcome.transition, 0) + 1
    return dict(sorted(counts.items()))
