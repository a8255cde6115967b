"""Fakes that ship in the package, so tests exercise real code paths
(an OpenAI-compatible HTTP server instead of a mocked client; an in-memory
producer and attempt ledger behind the pipeline's protocols instead of Kafka)."""

from flightrec.agents.testing.memory import MemoryAttemptLedger, MemoryProducer, SentMessage
from flightrec.agents.testing.openai_server import FakeOpenAIServer, ScriptedResponse

__all__ = [
    "FakeOpenAIServer",
    "MemoryAttemptLedger",
    "MemoryProducer",
    "ScriptedResponse",
    "SentMessage",
]
