"""Golden log format: one CoT event per line, ``model_dump(mode="json")`` with sorted
keys, in log order. Read back as recorded events (``read_cot_event``), so a golden
file is validated against the current event model on every test run."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from flightrec.contracts.events import CotEvent, CotEventBase, read_cot_event

__all__ = ["GOLDEN_DIR", "read_golden", "write_golden"]

GOLDEN_DIR = Path(__file__).parent / "golden"


def write_golden(path: Path, events: Iterable[CotEventBase]) -> None:
    """Write events as JSON lines (stable bytes: sorted keys)."""
    lines = [
        json.dumps(e.model_dump(mode="json"), sort_keys=True, ensure_ascii=False) for e in events
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_golden(path: Path) -> list[CotEvent]:
    """Events of a golden file, validated."""
    return [
        read_cot_event(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
