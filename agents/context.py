"""``RunContext``: the only source of time and ids inside a run.

Ids are derived from the trace id, attempt and a counter, so a run is
reproducible; time comes from an injectable clock (the wall clock live, a fixed
or recorded clock in tests and replay).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flightrec.contracts.events import SourceRef

__all__ = ["RunContext", "derive_trace_id", "system_clock"]


def system_clock() -> datetime:
    return datetime.now(UTC)


def derive_trace_id(source: SourceRef) -> str:
    """W3C trace id derived from the input's position in the log: a
    re-delivered input keeps its trace id (its attempts count up in one
    trace), and no two inputs share one, whatever trace context their
    producer put on them."""
    digest = hashlib.sha256(f"{source.topic}\x00{source.partition}\x00{source.offset}".encode())
    return digest.hexdigest()[:32]


@dataclass
class RunContext:
    """Clock and id source for one attempt of one run.

    ``elapsed`` (seconds since the run began) drives the deadline budget. Live
    it is the monotonic time since the context was created; replay passes the
    time the recording says had passed, so a run that ran out of time live runs
    out of time at the same step when it is re-run in a few milliseconds.

    ``upstream_traceparent`` is the W3C trace context the input arrived with,
    recorded on ``RUN_STARTED``. It never sets ``trace_id`` nor parents the
    run: the run is the root of its own trace (see :func:`derive_trace_id`).
    """

    trace_id: str
    attempt: int
    source: SourceRef
    clock: Callable[[], datetime] = system_clock
    upstream_traceparent: str | None = None
    elapsed: Callable[[], float] | None = None
    _counter: int = field(default=0, init=False)
    _started: float = field(default_factory=time.monotonic, init=False)

    def now(self) -> datetime:
        return self.clock()

    def elapsed_s(self) -> float:
        """Seconds since the run began (for budgets only)."""
        if self.elapsed is not None:
            return self.elapsed()
        return time.monotonic() - self._started

    def _next(self, label: str) -> str:
        self._counter += 1
        raw = f"{self.trace_id}:{self.attempt}:{label}:{self._counter}".encode()
        return hashlib.sha256(raw).hexdigest()

    def new_span_id(self) -> str:
        return self._next("span")[:16]

    def new_event_id(self) -> str:
        return self._next("event")[:32]

    def new_call_id(self) -> str:
        return "call_" + self._next("call")[:16]
