"""``RunHistory``: everything the log holds about one trace, checked, never smoothed over.

A trace is one input event processed by one agent. Each processing is an
*attempt* (the worker re-processes an input after a crash with ``attempt + 1``).
An attempt is *complete* when its last event is ``RUN_COMPLETED`` or
``RUN_FAILED``; otherwise it was *aborted* (the process died mid-run). The last
complete attempt is authoritative; earlier ones stay visible, marked aborted.

Problems found while grouping are reported on the attempt, not hidden:
gaps in ``seq`` (lost or deleted events), out-of-order or repeated ``seq``, and
the hash-chain verdict (a :class:`~flightrec.contracts.chain.ChainReport`:
modified / deleted / inserted event). The chain check is a pluggable function
(:func:`~flightrec.contracts.chain.verify_chain` by default) so tests can stand
in for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from flightrec.contracts.chain import ChainReport, verify_chain
from flightrec.contracts.events import (
    TERMINAL_KINDS,
    CotEvent,
    CotEventBase,
    Decision,
    RunFailed,
    RunStarted,
    business_key_of,
)

__all__ = [
    "Attempt",
    "AttemptStatus",
    "ChainVerifier",
    "RunHistory",
    "SeqProblem",
    "build_histories",
    "build_history",
]

AttemptStatus = Literal["COMPLETE", "ABORTED"]


ChainVerifier = Callable[[Sequence[CotEventBase]], ChainReport]
"""Checks the hash chain of one attempt's events, in log order."""

# What an attempt carries when no chain check ran (``chain_verifier=None``).
_UNCHECKED = ChainReport(ok=True)


@dataclass(frozen=True)
class SeqProblem:
    """A ``seq`` irregularity in an attempt: ``missing``, ``repeated`` or ``out_of_order``."""

    kind: Literal["missing", "repeated", "out_of_order"]
    seq: int
    detail: str

    def describe(self) -> str:
        """One readable line."""
        return f"{self.kind} seq {self.seq}: {self.detail}"


@dataclass(frozen=True)
class Attempt:
    """The events of one attempt of one trace, in log order, with what was found wrong."""

    number: int
    events: tuple[CotEvent, ...]
    seq_problems: tuple[SeqProblem, ...] = ()
    chain: ChainReport = _UNCHECKED
    duplicates: int = 0

    @property
    def status(self) -> AttemptStatus:
        """``COMPLETE`` when an event ends the run, else ``ABORTED``.

        Any terminal event counts, not only the last one: events written after
        the end (which the chain check names "appended after end") must not
        turn a finished run into one that reads as interrupted.
        """
        if any(event.kind in TERMINAL_KINDS for event in self.events):
            return "COMPLETE"
        return "ABORTED"

    @property
    def complete(self) -> bool:
        """True when the attempt ended with ``RUN_COMPLETED`` or ``RUN_FAILED``."""
        return self.status == "COMPLETE"

    @property
    def intact(self) -> bool:
        """No seq problem and an intact hash chain."""
        return self.chain.ok and not self.seq_problems

    @property
    def run_started(self) -> RunStarted | None:
        """The ``RUN_STARTED`` event (None when it was lost)."""
        for event in self.events:
            if isinstance(event, RunStarted):
                return event
        return None

    @property
    def decision(self) -> Decision | None:
        """The ``DECISION`` event, if the run reached one."""
        for event in reversed(self.events):
            if isinstance(event, Decision):
                return event
        return None

    @property
    def failure(self) -> RunFailed | None:
        """The ``RUN_FAILED`` event, if the run failed."""
        last = self.events[-1] if self.events else None
        return last if isinstance(last, RunFailed) else None

    @property
    def outcome(self) -> str | None:
        """The decision's outcome (None without a decision)."""
        decision = self.decision
        return decision.outcome if decision is not None else None

    def problems(self) -> list[str]:
        """Readable list of everything wrong with this attempt."""
        found = [p.describe() for p in self.seq_problems]
        if not self.chain.ok:
            found.append(f"hash chain {self.chain.describe()}")
        if not self.events or self.events[0].kind != "RUN_STARTED":
            found.append("attempt does not start with RUN_STARTED")
        return found


@dataclass(frozen=True)
class RunHistory:
    """All attempts of one trace, ordered by attempt number."""

    trace_id: str
    attempts: tuple[Attempt, ...]

    @property
    def authoritative(self) -> Attempt | None:
        """The last complete attempt (None when every attempt was aborted)."""
        for attempt in reversed(self.attempts):
            if attempt.complete:
                return attempt
        return None

    @property
    def latest(self) -> Attempt:
        """The attempt with the highest number, complete or not."""
        return self.attempts[-1]

    @property
    def intact(self) -> bool:
        """True when every attempt has a gap-free seq and an intact chain."""
        return all(a.intact for a in self.attempts)

    @property
    def run_started(self) -> RunStarted | None:
        """``RUN_STARTED`` of the authoritative attempt, else of any attempt."""
        chosen = self.authoritative
        if chosen is not None and chosen.run_started is not None:
            return chosen.run_started
        for attempt in reversed(self.attempts):
            if attempt.run_started is not None:
                return attempt.run_started
        return None

    @property
    def business_key(self) -> str | None:
        """The subject the run decides about (a loan application id, a claim id...).

        From ``RUN_STARTED`` (see :attr:`run_started`); when that was lost, from
        any other event that names it (every event recorded today carries the
        key; of older records only ``DECISION`` does)."""
        started = self.run_started
        key = business_key_of(started) if started is not None else None
        if key is not None:
            return key
        for attempt in reversed(self.attempts):
            for event in attempt.events:
                key = business_key_of(event)
                if key is not None:
                    return key
        return None

    @property
    def application_id(self) -> str | None:
        """The loan agent's name for :attr:`business_key` (the same value)."""
        return self.business_key

    @property
    def first_event(self) -> CotEvent:
        """Any event of the trace, for its envelope (agent, version, source)."""
        return self.attempts[-1].events[0]

    @property
    def outcome(self) -> str | None:
        """Outcome of the authoritative attempt."""
        chosen = self.authoritative
        return chosen.outcome if chosen is not None else None

    def attempt(self, number: int) -> Attempt:
        """The attempt numbered ``number`` (``KeyError`` if absent)."""
        for attempt in self.attempts:
            if attempt.number == number:
                return attempt
        raise KeyError(number)

    def problems(self) -> list[str]:
        """Readable list of problems across attempts, each prefixed by its attempt."""
        return [f"attempt {a.number}: {p}" for a in self.attempts for p in a.problems()]


def _seq_problems(events: Sequence[CotEventBase]) -> tuple[SeqProblem, ...]:
    # seq must run 0, 1, 2, ... in log order; report what is missing, repeated
    # or out of order, so a deleted or inserted event is named even without the chain.
    problems: list[SeqProblem] = []
    seen: set[int] = set()
    expected = 0
    for event in events:
        if event.seq in seen:
            problems.append(SeqProblem("repeated", event.seq, f"event {event.event_id}"))
            continue
        if event.seq < expected:
            problems.append(SeqProblem("out_of_order", event.seq, f"after seq {expected - 1}"))
        elif event.seq > expected:
            for missing in range(expected, event.seq):
                if missing not in seen:
                    problems.append(
                        SeqProblem("missing", missing, f"next event present is seq {event.seq}")
                    )
        seen.add(event.seq)
        expected = max(expected, event.seq + 1)
    return tuple(problems)


def build_history(
    trace_id: str,
    events: Iterable[CotEvent],
    *,
    chain_verifier: ChainVerifier | None = verify_chain,
) -> RunHistory:
    """Group one trace's events (in log order) into attempts and check each one.

    Exact re-deliveries (same ``event_id`` and same content, as an at-least-once
    producer may write) are dropped and counted; anything else that differs is
    kept so the seq and chain checks can name it. ``chain_verifier=None`` skips
    the chain check (the attempt then reports an intact chain).
    """
    by_attempt: dict[int, list[CotEvent]] = {}
    seen: dict[tuple[int, str], CotEvent] = {}
    duplicates: dict[int, int] = {}
    for event in events:
        if event.trace_id != trace_id:
            continue
        key = (event.attempt, event.event_id)
        if key in seen and seen[key] == event:
            duplicates[event.attempt] = duplicates.get(event.attempt, 0) + 1
            continue
        seen[key] = event
        by_attempt.setdefault(event.attempt, []).append(event)
    attempts = []
    for number in sorted(by_attempt):
        group = tuple(by_attempt[number])
        chain = chain_verifier(group) if chain_verifier is not None else _UNCHECKED
        attempts.append(
            Attempt(
                number=number,
                events=group,
                seq_problems=_seq_problems(group),
                chain=chain,
                duplicates=duplicates.get(number, 0),
            )
        )
    return RunHistory(trace_id=trace_id, attempts=tuple(attempts))


def build_histories(
    events: Iterable[CotEvent], *, chain_verifier: ChainVerifier | None = verify_chain
) -> list[RunHistory]:
    """Group events of many traces (in log order) into histories, in first-seen order."""
    by_trace: dict[str, list[CotEvent]] = {}
    for event in events:
        by_trace.setdefault(event.trace_id, []).append(event)
    return [
        build_history(trace_id, group, chain_verifier=chain_verifier)
        for trace_id, group in by_trace.items()
    ]
