"""flightrec: AI agents on Kafka, with a flight recorder for every decision.

The API is in the layer packages, each with an explicit ``__all__``:

- :mod:`flightrec.contracts`: events, errors and failure kinds, Kafka header
  names, the record-writer protocol, settings, the hash chain, the codec and
  contract governance;
- :mod:`flightrec.tools`: tool specs and the allow-listed toolset;
- :mod:`flightrec.agents`: agents, models, the runner and the run pipeline
  (the Faust worker is :mod:`flightrec.agents.worker`);
- :mod:`flightrec.recorder`: the Kafka recorder, the PII guard, tracing;
- :mod:`flightrec.replay`: reading, verifying, re-evaluating and auditing
  recorded runs;
- :mod:`flightrec.kafka`: the confirmed producer and topic administration;
- :mod:`flightrec.testing`: the development stack and test doubles.

This package itself exports nothing and imports nothing: Python runs it before
every ``flightrec.<layer>`` import, so anything imported here would be paid
for by every layer. The ``flightrec`` command is :func:`flightrec.cli.main`.
"""

__all__: list[str] = []
