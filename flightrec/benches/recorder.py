"""``flightrec bench recorder``: the recorder's throughput against a raw producer.

Measured in one run against the broker of ``settings`` (fresh topics, deleted
afterwards):

* **recorder**: CoT events per second through the whole recorder path
  (pydantic event -> PII scrub -> hash chain -> data-contract rules -> Avro ->
  Kafka with ``acks=all`` and idempotence), from many concurrent runs, until
  the broker confirmed every event;
* **raw**: a plain confluent-kafka ``Producer`` with the same configuration
  sending the same records, already encoded, with the same keys and headers;
* their ratio, and the p50 / p99 time a run waits in ``emit`` under that load
  (backpressure included).

The registry is confluent-kafka's in-process client loaded with the real
schemas and rules (as in ``bench codec``): after start-up the codec never calls
the registry, so the figure is the recorder's own cost. ``--live-registry``
uses the registry of ``settings`` instead (contracts must be applied).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

from flightrec.contracts.settings import Settings

__all__ = ["register"]

_CONCURRENT_RUNS = 64


def register(subparsers: Any) -> None:
    """Add ``bench recorder``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "recorder", help="recorder events/s vs a raw producer, and emit wait p99"
    )
    parser.add_argument("--events", type=int, default=20000, metavar="N")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--live-registry", action="store_true", help="use the registry of the settings"
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    result = asyncio.run(_bench(settings, args.events, live_registry=args.live_registry))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"events                 {result['events']:>10,}")
        print(f"recorder (full path)   {result['recorder_events_per_s']:>10,.0f} events/s")
        print(f"raw producer           {result['raw_events_per_s']:>10,.0f} events/s")
        print(f"ratio recorder / raw   {result['ratio']:>10.2f}   (target >= 0.5)")
        print(
            f"codec alone            {result['codec_only_events_per_s']:>10,.0f} events/s"
            "   (rules + Avro, no Kafka: the ceiling of the full path)"
        )
        print(
            f"recorder, codec done   {result['recorder_without_codec_events_per_s']:>10,.0f}"
            f" events/s   (ratio {result['ratio_without_codec']:.2f}: the recorder's own cost)"
        )
        print(f"emit wait p50          {result['emit_wait_p50_ms']:>10.3f} ms")
        print(f"emit wait p99          {result['emit_wait_p99_ms']:>10.3f} ms")
    return 0


def _create_topics(settings: Settings, names: list[str]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(settings.kafka_client_config())
    futures = admin.create_topics(
        [NewTopic(n, settings.cot_partitions, settings.replication_factor) for n in names]
    )
    for future in futures.values():
        future.result(30)


def _delete_topics(settings: Settings, names: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(settings.kafka_client_config())
    for future in admin.delete_topics(names).values():
        future.result(30)


def _raw_send(config: dict[str, Any], topic: str, records: list[Any]) -> float:
    """Send pre-encoded records with a plain producer; seconds until all confirmed."""
    from confluent_kafka import Producer

    producer = Producer(config)
    failures: list[Any] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(err)

    start = time.perf_counter()
    for key, value, headers in records:
        while True:
            try:
                producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(120)
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"raw producer: {len(failures)} deliveries failed: {failures[0]}")
    return elapsed


class _Preencoded:
    """An encoder whose work was done beforehand (isolates the recorder's own cost)."""

    def __init__(self, values: dict[str, bytes]) -> None:
        self._values = values

    async def encode_cot(self, event: Any) -> bytes:
        return self._values[event.event_id]


async def _through_recorder(
    settings: Settings, encoder: Any, guard: Any, vault: dict[str, str], runs: list[Any]
) -> tuple[float, list[float]]:
    """Seconds for concurrent runs to record every event, and each emit's wait."""
    from flightrec.recorder.kafka_recorder import KafkaRecorder

    waits: list[float] = []
    queue: asyncio.Queue[list[Any]] = asyncio.Queue()
    for run in runs:
        queue.put_nowait(run)
    async with KafkaRecorder(settings, encoder, guard=guard) as recorder:

        async def agent() -> None:
            while not queue.empty():
                run = queue.get_nowait()
                confirmations = []
                for event in run:
                    began = time.perf_counter()
                    confirmations.append(await recorder.emit(event, vault))
                    waits.append(time.perf_counter() - began)
                for confirmation in confirmations:
                    await confirmation

        start = time.perf_counter()
        await asyncio.gather(*(agent() for _ in range(_CONCURRENT_RUNS)))
        return time.perf_counter() - start, waits


async def _bench(settings: Settings, n: int, *, live_registry: bool) -> dict[str, Any]:
    from flightrec.contracts.chain import ChainSealer
    from flightrec.contracts.codec import Codec
    from flightrec.contracts.events import CotEvent
    from flightrec.recorder.kafka_recorder import cot_headers
    from flightrec.recorder.pii import PiiGuard
    from flightrec.testing.offline import offline_registry
    from flightrec.testing.runs import synthetic_run, synthetic_trace_id
    from flightrec.testing.samples import sample_application

    run_id = uuid.uuid4().hex[:8]
    full_topic = f"{settings.topics.cot}.bench-{run_id}"
    raw_topic = f"{settings.topics.cot}.bench-raw-{run_id}"
    bench = settings.model_copy(
        update={"topics": settings.topics.model_copy(update={"cot": full_topic})}
    )
    await asyncio.to_thread(_create_topics, settings, [full_topic, raw_topic])

    guard = PiiGuard(settings)
    _, vault = guard.tokenize(sample_application())
    runs: list[list[CotEvent]] = []
    total = 0
    while total < n:
        run = synthetic_run(synthetic_trace_id(len(runs), run_id))
        runs.append(run)
        total += len(run)

    codec = Codec(settings, None if live_registry else offline_registry(settings))
    await codec.start()
    try:
        # The raw side sends exactly what the recorder would: sealed, encoded.
        sealer = ChainSealer()
        records = []
        values: list[bytes] = []
        sealed_events: list[CotEvent] = []
        for run in runs:
            for event in run:
                sealed = sealer.seal(event)
                sealed_events.append(sealed)
        # The codec alone (rules + Avro, no Kafka): a ceiling for the full path,
        # which cannot encode faster than this on one core.
        encode_started = time.perf_counter()
        for sealed in sealed_events:
            values.append(await codec.encode_cot(sealed))
        encode_s = time.perf_counter() - encode_started
        for sealed, value in zip(sealed_events, values, strict=True):
            records.append((sealed.trace_id, value, cot_headers(sealed)))
        raw_s = await asyncio.to_thread(_raw_send, settings.producer_config(), raw_topic, records)

        full_s, waits = await _through_recorder(bench, codec, guard, vault, runs)
        # The same path with the codec's work done in advance: the recorder's own cost.
        encoded = {e.event_id: value for e, value in zip(sealed_events, values, strict=True)}
        bare = bench.model_copy(
            update={"topics": settings.topics.model_copy(update={"cot": raw_topic})}
        )
        bare_s, _ = await _through_recorder(bare, _Preencoded(encoded), guard, vault, runs)
    finally:
        await codec.close()
        await asyncio.to_thread(_delete_topics, settings, [full_topic, raw_topic])

    waits.sort()
    full_rate = total / full_s
    raw_rate = total / raw_s
    return {
        "events": total,
        "recorder_events_per_s": full_rate,
        "raw_events_per_s": raw_rate,
        "ratio": full_rate / raw_rate,
        "codec_only_events_per_s": total / encode_s,
        "recorder_without_codec_events_per_s": total / bare_s,
        "ratio_without_codec": total / bare_s / raw_rate,
        "emit_wait_p50_ms": statistics.median(waits) * 1000,
        "emit_wait_p99_ms": waits[int(len(waits) * 0.99) - 1] * 1000,
        "concurrent_runs": _CONCURRENT_RUNS,
    }
