"""The development stack and test doubles, shipped so teams can test their own
agents the way flightrec tests its own: real code paths, no mocks of Kafka or
of the openai client (docs/design.md, "Testing package").

- :func:`start_registry`: the embedded Confluent-compatible schema registry
  (``python -m flightrec.testing.registry``), state kept in a Kafka topic.
- :func:`start_bureau`: the credit-bureau simulator the loan tools call
  (``python -m flightrec.testing.bureau``); :func:`start_app` and
  :func:`serve_until_stopped` serve it, and an agent's own simulator, the same way.
- :class:`FakeOpenAIServer`: an OpenAI-compatible HTTP server with scripted
  replies, so :class:`~flightrec.agents.models.OpenAIModel` runs its real client.
- :class:`ScriptedModel`, :class:`FunctionModel`: models that answer from a
  script or a function.
- :class:`MemoryRecorder`, :class:`MemoryProducer`, :class:`MemoryAttemptLedger`:
  in-memory stand-ins for the broker-backed parts, for unit tests.
- :func:`offline_registry`: a registry client with every contract registered,
  no server needed.
- :func:`schema_drift`: where a pydantic model and its Avro record schema
  disagree (field names, nullability, types, defaults).
- Samples and synthetic data: :func:`sample_application`,
  :func:`sample_cot_events`, :func:`synthetic_run` (the loan agent's seeded
  applications are :func:`~flightrec.agents.loan_samples.synthetic_applications`).
"""

from flightrec.testing.bureau import start_bureau
from flightrec.testing.http_service import serve_until_stopped, start_app
from flightrec.testing.memory import (
    MemoryAttemptLedger,
    MemoryProducer,
    MemoryRecorder,
    SentMessage,
)
from flightrec.testing.models import FunctionModel, ScriptedModel, ScriptEntry
from flightrec.testing.offline import offline_registry
from flightrec.testing.openai_server import FakeOpenAIServer, ScriptedResponse
from flightrec.testing.registry import RunningRegistry, start_registry
from flightrec.testing.runs import synthetic_run, synthetic_trace_id
from flightrec.testing.samples import (
    SAMPLE_TIME,
    SAMPLE_TRACE_ID,
    sample_application,
    sample_cot_events,
    sample_decision,
    sample_replay,
)
from flightrec.testing.schema_drift import schema_drift

__all__ = [
    "SAMPLE_TIME",
    "SAMPLE_TRACE_ID",
    "FakeOpenAIServer",
    "FunctionModel",
    "MemoryAttemptLedger",
    "MemoryProducer",
    "MemoryRecorder",
    "RunningRegistry",
    "ScriptEntry",
    "ScriptedModel",
    "ScriptedResponse",
    "SentMessage",
    "offline_registry",
    "sample_application",
    "sample_cot_events",
    "sample_decision",
    "sample_replay",
    "schema_drift",
    "serve_until_stopped",
    "start_app",
    "start_bureau",
    "start_registry",
    "synthetic_run",
    "synthetic_trace_id",
]
