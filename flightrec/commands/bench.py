"""``flightrec bench NAME``: benchmarks that print ratios measured in one run."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from typing import Any

import flightrec.benches

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench", help="benchmarks (throughput and latency ratios, one run)"
    )
    benches = parser.add_subparsers(dest="bench", metavar="NAME")
    for info in sorted(pkgutil.iter_modules(flightrec.benches.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue  # a bench's helper module, not a bench
        module = importlib.import_module(f"flightrec.benches.{info.name}")
        module.register(benches)
