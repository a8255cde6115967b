"""``flightrec bench replay``: verification throughput against raw reading, one run.

Over the same CoT topic (the demo's, by default) it measures

1. raw: consume every record and decode it through the codec (events/s);
2. verify: read, group into histories (chain checked), re-run every trace
   offline with ``ReplayModel`` / ``ReplayToolset`` (traces/s and events/s);

and prints the ratio verify-events/s : raw-events/s (target >= 0.5).
Nothing is published: the benchmark leaves ``agent.replays`` untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from flightrec.contracts.codec import Codec
from flightrec.contracts.settings import Settings
from flightrec.replay.batch import run_bounded
from flightrec.replay.reader import CotReader
from flightrec.replay.replayer import AgentCatalog, Replayer

__all__ = ["ReplayBench", "register", "run_replay_bench"]


@dataclass(frozen=True)
class ReplayBench:
    """Figures of one benchmark run."""

    topic: str
    events: int
    traces: int
    raw_events_per_s: float
    verify_traces_per_s: float
    verify_events_per_s: float
    ratio: float
    reproduced: int
    not_reproduced: int


def register(subparsers: Any) -> None:
    """Add ``bench replay``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay", help="traces verified per second vs raw consume-and-decode"
    )
    parser.add_argument("--topic", help="CoT topic to read (default: the configured one)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=_handler)


async def run_replay_bench(
    settings: Settings, codec: Codec, catalog: AgentCatalog, *, topic: str | None = None
) -> ReplayBench:
    """Measure raw decode and verification over the whole topic."""
    async with CotReader(settings, codec, topic=topic) as reader:
        segments = await reader.scan_segments()
        # 1. raw consume + decode
        started = time.perf_counter()
        raw = await reader.read_raw(segments)
        events = await reader.decode(raw)
        raw_s = time.perf_counter() - started
        # 2. verify: read again (same work as raw), group, check chains, replay
        started = time.perf_counter()
        raw_again = await reader.read_raw(segments)
        histories = reader.histories(await reader.decode(raw_again))
        replayer = Replayer(catalog)
        outcomes = await run_bounded(
            histories, replayer.verify, concurrency=settings.worker_concurrency
        )
        verify_s = time.perf_counter() - started
    raw_rate = len(events) / raw_s if raw_s > 0 else 0.0
    verify_rate = len(raw_again) / verify_s if verify_s > 0 else 0.0
    reproduced = sum(o.status == "REPRODUCED" for o in outcomes)
    return ReplayBench(
        topic=reader.topic,
        events=len(events),
        traces=len(histories),
        raw_events_per_s=round(raw_rate, 1),
        verify_traces_per_s=round(len(histories) / verify_s, 1) if verify_s > 0 else 0.0,
        verify_events_per_s=round(verify_rate, 1),
        ratio=round(verify_rate / raw_rate, 3) if raw_rate > 0 else 0.0,
        reproduced=reproduced,
        not_reproduced=len(outcomes) - reproduced,
    )


def _handler(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> ReplayBench:
        from flightrec.replay.catalog import RegistryCatalog

        codec = Codec(settings)
        await codec.start()
        try:
            async with RegistryCatalog(settings) as catalog:
                return await run_replay_bench(settings, codec, catalog, topic=args.topic)
        finally:
            await codec.close()

    result = asyncio.run(body())
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(
            f"{result.topic}: {result.events} events, {result.traces} traces\n"
            f"raw consume+decode: {result.raw_events_per_s} events/s\n"
            f"verify: {result.verify_traces_per_s} traces/s = {result.verify_events_per_s} events/s "
            f"({result.reproduced} reproduced, {result.not_reproduced} not)\n"
            f"ratio verify/raw: {result.ratio} (target >= 0.5)"
        )
    return 0
