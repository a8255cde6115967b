"""Agents: what an agent is, how one run goes, and how inputs become runs.

Write an agent:

- :class:`Agent`: inert, frozen configuration (instructions, output type,
  tool allow-list, budgets).
- The steps a model proposes: :class:`AgentStep` holding one
  :class:`ThoughtStep`, :class:`ToolCallStep` or :class:`DecisionStep`.
- The :class:`Model` protocol: ``next_step`` takes a :class:`ModelRequest`
  (the conversation, the step type, the time left) and returns a
  :class:`ModelTurn` holding every try as a :class:`ModelAttempt`
  (:class:`ModelInfo` says who answers, :func:`request_hash` what was asked).
  The conversation: :class:`Message`, :data:`Transcript`,
  :func:`read_input`, :func:`read_steps`, :func:`read_tool_results`, and
  :class:`Evidence` (what an offline model reads from them). Implementations are in
  :mod:`flightrec.agents.models`; test models in :mod:`flightrec.testing`.

Run it:

- :func:`run_agent`: one attempt of one run, an async generator of CoT events;
  :class:`RunContext` is its only source of time and ids
  (:func:`derive_trace_id` gives a run the trace id of its input).
- :class:`RunPipeline`: one input record from bytes to confirmed decision (or
  dead letter), with :class:`AttemptLedger` (attempt numbers that survive
  crashes).
- :class:`KeyedDispatcher`: many runs in flight, in order per record key, acked
  in offset order (:class:`OffsetTracker` says what is safe to commit; a
  :class:`Fence` stops a run whose partition was revoked; :class:`DispatchStats`
  for metrics).

Two modules are kept out of this package on purpose. The Faust worker
(:mod:`flightrec.agents.worker`) is the only module that imports Faust, so
importing ``flightrec.agents`` never does. The reference loan agent
(:mod:`flightrec.agents.loan_agent`) builds the OpenAI client, which the
runner and replay do not need to load.
"""

from flightrec.agents.agent import Agent
from flightrec.agents.attempts import AttemptLedger
from flightrec.agents.context import RunContext, derive_trace_id
from flightrec.agents.dispatch import DispatchStats, Fence, KeyedDispatcher
from flightrec.agents.model import (
    ClosableModel,
    Message,
    Model,
    ModelAttempt,
    ModelInfo,
    ModelRequest,
    ModelTurn,
    Transcript,
    request_hash,
)
from flightrec.agents.offsets import OffsetTracker
from flightrec.agents.pipeline import PayloadCipher, PipelineResult, RunPipeline
from flightrec.agents.runner import run_agent
from flightrec.agents.steps import AgentStep, DecisionStep, ThoughtStep, ToolCallStep
from flightrec.agents.transcript import Evidence, read_input, read_steps, read_tool_results

__all__ = [
    "Agent",
    "AgentStep",
    "AttemptLedger",
    "ClosableModel",
    "DecisionStep",
    "DispatchStats",
    "Evidence",
    "Fence",
    "KeyedDispatcher",
    "Message",
    "Model",
    "ModelAttempt",
    "ModelInfo",
    "ModelRequest",
    "ModelTurn",
    "OffsetTracker",
    "PayloadCipher",
    "PipelineResult",
    "RunContext",
    "RunPipeline",
    "ThoughtStep",
    "ToolCallStep",
    "Transcript",
    "derive_trace_id",
    "read_input",
    "read_steps",
    "read_tool_results",
    "request_hash",
    "run_agent",
]
