"""``ReplayModel``: a ``Model`` that answers from a recording and never calls anything.

Each recorded model *turn* is one or more consecutive ``MODEL_CALL`` events
(``call_attempt`` 1, 2, ... for retries). ``next_step`` serves the turns in
order, after checking that the request the live code now makes hashes to the
recorded ``request_hash`` (same model, sampling, messages and output type). A
different request, or a request past the end of the recording, raises
:class:`~flightrec.contracts.errors.DivergenceError` naming the step.

The run deadline (``ModelRequest.deadline_s``) is not part of what is asked
and is ignored: a turn the live model cut short at the deadline is served as
recorded, its tries and its closing ``BudgetExceededError`` attempt included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flightrec.agents.model import ModelAttempt, ModelInfo, ModelRequest, ModelTurn, Transcript
from flightrec.agents.steps import AgentStep
from flightrec.contracts.errors import DivergenceError
from flightrec.contracts.events import CotEventBase, ModelCall, RunStarted

__all__ = ["RecordedTurn", "ReplayModel", "recorded_model_info", "recorded_turns"]


@dataclass(frozen=True)
class RecordedTurn:
    """The ``MODEL_CALL`` events of one ``next_step`` call (retries included)."""

    calls: tuple[ModelCall, ...]

    @property
    def step(self) -> int:
        """Run-loop step the turn belongs to."""
        return self.calls[0].step

    @property
    def request_hash(self) -> str:
        """The hash of the request as first sent."""
        return self.calls[0].request_hash

    def to_turn(self, output_type: type[AgentStep] = AgentStep) -> ModelTurn:
        """The ``ModelTurn`` the live model returned, rebuilt from the record; the
        output parsed as ``output_type`` (the step type the agent asks for)."""
        attempts = tuple(ModelAttempt.from_call(c) for c in self.calls)
        output: AgentStep | None = None
        last = self.calls[-1]
        if last.status == "ok" and last.output_json is not None:
            output = output_type.model_validate_json(last.output_json)
        return ModelTurn(output=output, attempts=attempts)


def recorded_turns(events: Sequence[CotEventBase]) -> list[RecordedTurn]:
    """Group an attempt's ``MODEL_CALL`` events into turns (a turn starts at ``call_attempt`` 1)."""
    turns: list[list[ModelCall]] = []
    for event in events:
        if not isinstance(event, ModelCall):
            continue
        if event.call_attempt == 1 or not turns:
            turns.append([event])
        else:
            turns[-1].append(event)
    return [RecordedTurn(tuple(t)) for t in turns]


def recorded_model_info(events: Sequence[CotEventBase]) -> ModelInfo:
    """The ``ModelInfo`` the recorded run used (``RUN_STARTED`` + first ``MODEL_CALL``)."""
    started = next((e for e in events if isinstance(e, RunStarted)), None)
    first = next((e for e in events if isinstance(e, ModelCall)), None)
    if started is None:
        raise ValueError("the recording has no RUN_STARTED event")
    return ModelInfo(
        provider=started.gen_ai_provider_name,
        model=started.gen_ai_request_model,
        profile=started.model_profile,
        temperature=first.gen_ai_request_temperature if first is not None else None,
        seed=first.gen_ai_request_seed if first is not None else None,
    )


def _describe_request(transcript: Transcript) -> str:
    # The recording holds only the hash of the request; what we can show is what
    # the live code asked now, ending with the message that changed last.
    if not transcript:
        return "an empty transcript"
    last = transcript[-1]
    content = last.content if len(last.content) <= 300 else last.content[:300] + "..."
    return f"{len(transcript)} messages, last {last.role}: {content}"


class ReplayModel:
    """Serves recorded model turns in order; raises ``DivergenceError`` on any other request."""

    def __init__(self, events: Sequence[CotEventBase], *, info: ModelInfo | None = None) -> None:
        self._turns = recorded_turns(events)
        self._info = info if info is not None else recorded_model_info(events)
        self._next = 0
        steps = [e.step for e in events]
        self._after_last_step = (max(steps) + 1) if steps else 0

    @property
    def info(self) -> ModelInfo:
        """The model configuration of the recording (so request hashes can match)."""
        return self._info

    @property
    def remaining(self) -> int:
        """Recorded turns not asked for (a shorter replay is also a divergence)."""
        return len(self._turns) - self._next

    async def next_step(self, request: ModelRequest) -> ModelTurn:
        """The next recorded turn, if the request matches the recorded one (the
        deadline is ignored: the record already holds what time allowed)."""
        actual_hash = request.hash(self._info)
        transcript = request.transcript
        if self._next >= len(self._turns):
            raise DivergenceError(
                "replay asked the model for more than the recording holds",
                step=self._after_last_step,
                expected="no further model call (the recorded run ended)",
                actual=f"model request {actual_hash[:12]} with {_describe_request(transcript)}",
            )
        turn = self._turns[self._next]
        if actual_hash != turn.request_hash:
            raise DivergenceError(
                "the model request differs from the recording",
                step=turn.step,
                expected=f"model request {turn.request_hash[:12]} (recorded step {turn.step})",
                actual=f"model request {actual_hash[:12]} with {_describe_request(transcript)}",
            )
        self._next += 1
        return turn.to_turn(request.output_type)
