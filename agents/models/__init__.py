"""Models: ``PolicyModel`` (offline) and ``OpenAIModel`` (any OpenAI-compatible
endpoint). Test models (``ScriptedModel``, ``FunctionModel``) live in
:mod:`flightrec.testing`."""

from flightrec.agents.models.openai_model import OpenAIModel
from flightrec.agents.models.policy import PolicyModel

__all__ = ["OpenAIModel", "PolicyModel"]
