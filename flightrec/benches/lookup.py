"""``flightrec bench lookup``: trace lookup latency (p50, p99) at 10 thousand and at
1 million CoT events, in one run, on a throw-away topic.

Synthetic traces are generated fast: each template run is encoded once through
the codec (rules run), then every trace is produced as the template's bytes
with the 32-character trace id substituted (same length, so the Avro record
stays valid) by a raw producer. The index is updated incrementally between
the two sizes, as it would be in production; the lookups are index query plus
an assign/seek read and decode of just that trace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from flightrec.contracts.codec import Codec
from flightrec.contracts.headers import COT_KIND
from flightrec.contracts.settings import Settings
from flightrec.replay.index import TraceIndex
from flightrec.replay.reader import CotReader
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

__all__ = ["LookupPoint", "register", "run_lookup_bench"]


@dataclass(frozen=True)
class LookupPoint:
    """Latency of random lookups once the log holds ``events`` events."""

    events: int
    traces: int
    index_update_s: float
    lookups: int
    p50_ms: float
    p99_ms: float


def register(subparsers: Any) -> None:
    """Add ``bench lookup``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lookup", help="trace lookup p50/p99 at 10k and 1M CoT events"
    )
    parser.add_argument("--sizes", default="10000,1000000", help="event counts, comma-separated")
    parser.add_argument("--lookups", type=int, default=300, help="random lookups per size")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=_handler)


async def _templates(codec: Codec, count: int) -> list[tuple[str, list[tuple[str, bytes]]]]:
    templates = []
    for i in range(count):
        trace_id = synthetic_trace_id(i, "lookup-template")
        events = synthetic_run(
            trace_id,
            application_id=f"tpl-{i:03d}",
            outcome=("APPROVE", "REFER", "DECLINE")[i % 3],
            complete=i % 17 != 5,
        )
        encoded = [(str(e.kind), await codec.encode_cot(e)) for e in events]
        templates.append((trace_id, encoded))
    return templates


def _produce(
    settings: Settings,
    topic: str,
    templates: list[tuple[str, list[tuple[str, bytes]]]],
    start: int,
    target_events: int,
    salt: str,
) -> tuple[int, list[str]]:
    producer = Producer(settings.producer_config(**{"linger.ms": 20, "batch.size": 1_000_000}))
    produced, index, ids = 0, start, []
    while produced < target_events:
        template_id, encoded = templates[index % len(templates)]
        trace_id = synthetic_trace_id(index, salt)
        old, new = template_id.encode(), trace_id.encode()
        for kind, data in encoded:
            while True:
                try:
                    producer.produce(
                        topic,
                        data.replace(old, new),
                        key=new,
                        headers=[(COT_KIND, kind.encode())],
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            produced += 1
        ids.append(trace_id)
        index += 1
        if index % 2000 == 0:
            producer.poll(0)
    producer.flush(120)
    return index, ids


async def run_lookup_bench(
    settings: Settings,
    codec: Codec,
    *,
    sizes: tuple[int, ...] = (10_000, 1_000_000),
    lookups: int = 300,
    seed: int = 1,
) -> list[LookupPoint]:
    """Grow a fresh topic to each size, update the index, time random lookups."""
    topic = f"{settings.topics.cot}.bench-lookup-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(settings.kafka_client_config())
    futures = admin.create_topics(
        [NewTopic(topic, settings.cot_partitions, settings.replication_factor)]
    )
    await asyncio.to_thread(lambda: [f.result() for f in futures.values()])
    rng = random.Random(seed)
    points: list[LookupPoint] = []
    index_path = settings.stack_dir / "bench" / f"{topic}.sqlite3"
    try:
        templates = await _templates(codec, 100)
        async with CotReader(settings, codec, topic=topic, chain_verifier=None) as reader:
            index = TraceIndex(settings, reader, codec, path=index_path)
            try:
                next_index, all_ids, total = 0, [], 0
                for size in sizes:
                    next_index, ids = await asyncio.to_thread(
                        _produce, settings, topic, templates, next_index, size - total, topic
                    )
                    all_ids.extend(ids)
                    total = size
                    started = time.perf_counter()
                    await index.update()
                    update_s = time.perf_counter() - started
                    timings = []
                    for trace_id in rng.sample(all_ids, min(lookups, len(all_ids))):
                        t0 = time.perf_counter()
                        history = await index.lookup(trace_id, refresh=False)
                        timings.append((time.perf_counter() - t0) * 1000)
                        if history.trace_id != trace_id or not history.attempts:
                            raise AssertionError(f"lookup of {trace_id} returned the wrong trace")
                    timings.sort()
                    points.append(
                        LookupPoint(
                            events=size,
                            traces=len(all_ids),
                            index_update_s=round(update_s, 2),
                            lookups=len(timings),
                            p50_ms=round(statistics.median(timings), 2),
                            p99_ms=round(timings[max(0, int(len(timings) * 0.99) - 1)], 2),
                        )
                    )
            finally:
                index.close()
    finally:
        await asyncio.to_thread(lambda: [f.result() for f in admin.delete_topics([topic]).values()])
        index_path.unlink(missing_ok=True)
    return points


def _handler(args: argparse.Namespace, settings: Settings) -> int:
    sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip())

    async def body() -> list[LookupPoint]:
        codec = Codec(settings, contracts=("cot_event",))
        await codec.start()
        try:
            return await run_lookup_bench(settings, codec, sizes=sizes, lookups=args.lookups)
        finally:
            await codec.close()

    points = asyncio.run(body())
    if args.json:
        print(json.dumps([p.__dict__ for p in points], indent=2))
    else:
        for p in points:
            print(
                f"{p.events:>9} events {p.traces:>7} traces: lookup p50 {p.p50_ms} ms, "
                f"p99 {p.p99_ms} ms ({p.lookups} random lookups; index update {p.index_update_s} s)"
            )
        if len(points) >= 2 and points[0].p99_ms > 0:
            print(f"p99 ratio largest/smallest log: {points[-1].p99_ms / points[0].p99_ms:.2f}")
    return 0
