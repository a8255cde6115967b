"""Models: ``PolicyModel`` (offline), ``OpenAIModel`` (any OpenAI-compatible
endpoint), and the test models ``ScriptedModel`` / ``FunctionModel``."""

from flightrec.agents.models.openai_model import OpenAIModel
from flightrec.agents.models.policy import PolicyModel
from flightrec.agents.models.scripted import FunctionModel, ScriptedModel

__all__ = ["FunctionModel", "OpenAIModel", "PolicyModel", "ScriptedModel"]
