"""Replay: rebuild, verify and re-evaluate recorded decisions from the Kafka log.

- :class:`ReplayService`: everything below wired together (codec, reader,
  trace index, replayer, publication of results), as the ``flightrec trace``,
  ``replay`` and ``audit`` commands use it. :class:`Selection` (with
  :func:`parse_time`) says which traces a command means.
- Reading: :class:`CotReader` reads the CoT topic back (never committing, so
  no consumer group moves); :class:`TraceIndex` finds a trace's records
  without scanning the log, by trace id or business key; :class:`Segment` is
  one offset range.
- Checking: :class:`RunHistory` is one trace, its attempts (:class:`Attempt`)
  with their gaps, repeats and chain verdicts reported, never smoothed over
  (:func:`build_history`, :func:`build_histories`).
- Re-running: :class:`Replayer` verifies a run offline (:class:`ReplayModel`
  and a strict :class:`ReplayToolset` answer from the recording; the outcome
  is a :class:`VerifyOutcome`) or re-evaluates it under a :class:`Candidate`
  (:class:`ReevaluateOutcome`, :func:`summarize_transitions`). An
  :class:`AgentCatalog` resolves what a record names into runnable parts;
  :class:`RegistryCatalog` is the loan agent's.
- Publishing and auditing: :class:`ReplaySink` writes results to the replays
  topic only (:func:`read_replay_results` reads them back);
  :func:`audit_document` and :func:`render_audit` build the compliance report.
"""

from flightrec.replay.audit import AuditFormat, audit_document, render_audit
from flightrec.replay.batch import ReplaySink, read_replay_results
from flightrec.replay.catalog import RegistryCatalog
from flightrec.replay.history import Attempt, RunHistory, build_histories, build_history
from flightrec.replay.index import TraceIndex, TraceSummary
from flightrec.replay.reader import CotReader, Segment
from flightrec.replay.replay_model import ReplayModel
from flightrec.replay.replay_tools import ReplayToolset
from flightrec.replay.replayer import (
    AgentCatalog,
    Candidate,
    ReevaluateOutcome,
    ReplayableAgent,
    Replayer,
    VerifyOutcome,
    summarize_transitions,
)
from flightrec.replay.selectors import Selection, parse_time
from flightrec.replay.service import ReplayService

__all__ = [
    "AgentCatalog",
    "Attempt",
    "AuditFormat",
    "Candidate",
    "CotReader",
    "ReevaluateOutcome",
    "RegistryCatalog",
    "ReplayModel",
    "ReplayService",
    "ReplaySink",
    "ReplayToolset",
    "ReplayableAgent",
    "Replayer",
    "RunHistory",
    "Segment",
    "Selection",
    "TraceIndex",
    "TraceSummary",
    "VerifyOutcome",
    "audit_document",
    "build_histories",
    "build_history",
    "parse_time",
    "read_replay_results",
    "render_audit",
    "summarize_transitions",
]
