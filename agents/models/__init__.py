"""Models: the implementations of :class:`flightrec.agents.Model`.

- :class:`OpenAIModel`: any OpenAI-compatible endpoint (OpenAI, Azure, vLLM,
  Ollama), structured outputs, every try recorded as a ``MODEL_CALL``.
- :class:`PolicyModel`: deterministic and offline; underwrites by the loan
  policy from the transcript alone.
- :class:`DelayedModel`: any model, answering a fixed time later (a
  benchmark knob, ``Settings.model_latency_ms``).

An offline model of a team's own (the claims example's ``ClaimsRulesModel``)
builds its turns with :func:`ok_turn` and :func:`error_turn`, which count
tokens the way these models do (:func:`estimate_tokens`).

Test models (``ScriptedModel``, ``FunctionModel``) live in
:mod:`flightrec.testing`, replay's ``ReplayModel`` in :mod:`flightrec.replay`.
"""

from flightrec.agents.models.base import error_turn, estimate_tokens, ok_turn
from flightrec.agents.models.delayed import DelayedModel
from flightrec.agents.models.openai_model import OpenAIModel
from flightrec.agents.models.policy import PolicyModel

__all__ = ["DelayedModel", "OpenAIModel", "PolicyModel", "error_turn", "estimate_tokens", "ok_turn"]
