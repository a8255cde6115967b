"""``flightrec bench codec``: CoT events encoded (rules included) per second, Rust
CEL engine versus cel-python, measured in one run.

The registry is confluent-kafka's in-process mock, registered with the real
schemas and rules: after start-up the codec never calls the registry, so the
figure is the CPU cost the recorder pays per event.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from flightrec.contracts.settings import Settings

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``bench codec``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "codec", help="encode_cot/decode_cot per second, Rust CEL vs cel-python"
    )
    parser.add_argument("--events", type=int, default=5000, metavar="N")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_bench(settings, args.events))


async def _bench(settings: Settings, n: int) -> int:
    from flightrec.contracts.codec import Codec
    from flightrec.testing.offline import offline_registry
    from flightrec.testing.samples import sample_cot_events

    client = offline_registry(settings)
    events = sample_cot_events()
    rates: dict[str, tuple[float, float]] = {}
    for engine in ("fast", "celpy"):
        codec = Codec(settings, client, cel_engine=engine)  # type: ignore[arg-type]
        await codec.start()
        encoded = [await codec.encode_cot(e) for e in events]
        start = time.perf_counter()
        for i in range(n):
            await codec.encode_cot(events[i % len(events)])
        encode_rate = n / (time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(n):
            await codec.decode_cot(encoded[i % len(encoded)])
        decode_rate = n / (time.perf_counter() - start)
        rates[engine] = (encode_rate, decode_rate)
        print(f"{engine:<6} encode_cot {encode_rate:>9,.0f}/s   decode_cot {decode_rate:>9,.0f}/s")
    print(f"encode ratio rust-cel / cel-python: {rates['fast'][0] / rates['celpy'][0]:.1f}x")
    return 0
