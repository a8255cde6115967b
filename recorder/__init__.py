"""The flight recorder: CoT events to Kafka, ordered, hash-chained, PII-guarded, traced.

- :class:`Recorder`: the protocol a run is recorded through (its in-memory
  fake is ``flightrec.testing.MemoryRecorder``); :class:`KafkaRecorder` writes
  to the CoT topic and confirms every event, encoding through any
  :class:`CotEncoder` (``flightrec.contracts.Codec``); with a signer, its
  :class:`Checkpointer` writes signed checkpoints of the CoT partitions' chain
  heads.
- :class:`PiiGuard`: personal data becomes keyed tokens before anything
  leaves the process; :class:`PiiScrubber` is the scrub policy it applies
  (and every recorder scrubs by), :class:`ScrubbingSealer` the one
  scrub-then-seal step both recorders take each event through;
  :class:`PiiLogFilter` scrubs log records; :class:`DlqCipher` encrypts
  dead-letter payloads.
- :func:`setup_tracing` and :class:`SpanRecorder`: OpenTelemetry spans made
  from the recorded events, with the events' trace and span ids;
  :func:`setup_metrics`: the meter provider of the worker's runtime metrics.
"""

from flightrec.recorder.base import CotEncoder, Recorder
from flightrec.recorder.checkpoints import Checkpointer
from flightrec.recorder.dlq_cipher import DlqCipher
from flightrec.recorder.kafka_recorder import KafkaRecorder
from flightrec.recorder.log_filter import PiiLogFilter
from flightrec.recorder.otel import setup_metrics, setup_tracing
from flightrec.recorder.pii import PiiGuard, PiiScrubber
from flightrec.recorder.sealing import ScrubbingSealer
from flightrec.recorder.tracing import SpanRecorder

__all__ = [
    "Checkpointer",
    "CotEncoder",
    "DlqCipher",
    "KafkaRecorder",
    "PiiGuard",
    "PiiLogFilter",
    "PiiScrubber",
    "Recorder",
    "ScrubbingSealer",
    "SpanRecorder",
    "setup_metrics",
    "setup_tracing",
]
