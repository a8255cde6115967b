"""Fakes that ship in the package, so tests exercise real code paths
(an OpenAI-compatible HTTP server instead of a mocked client)."""

from agents.testing.openai_server import FakeOpenAIServer, ScriptedResponse

__all__ = ["FakeOpenAIServer", "ScriptedResponse"]
