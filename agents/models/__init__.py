"""Models: ``PolicyModel`` (offline), ``OpenAIModel`` (any OpenAI-compatible
endpoint), and the test models ``ScriptedModel`` / ``FunctionModel``."""

from agents.models.openai_model import OpenAIModel
from agents.models.policy import PolicyModel
from agents.models.scripted import FunctionModel, ScriptedModel

__all__ = ["FunctionModel", "OpenAIModel", "PolicyModel", "ScriptedModel"]
