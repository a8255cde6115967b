"""Command-line helpers of the replay commands (``flightrec trace``, ``replay``, ``audit``):
exit code 2 for an unknown trace or bad selection, the business-key options, and a
stderr progress bar.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from flightrec.contracts.errors import TraceNotFoundError
from flightrec.replay.selectors import parse_time

__all__ = ["ProgressBar", "add_key_arguments", "run_command", "time_arg"]


def time_arg(text: str) -> str:
    """argparse type: validates ISO 8601 times and durations (``2h``), kept as text."""
    try:
        parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    """``--key KEY`` and its loan-agent name ``--application ID`` (the same choice)."""
    parser.add_argument(
        "--key",
        metavar="KEY",
        help="every trace of this business key (claim id, application id...)",
    )
    parser.add_argument(
        "--application", metavar="ID", help="every trace of this loan application (= --key)"
    )


def run_command(coro_fn: Callable[[], Awaitable[int]]) -> int:
    """Run an async command body; an unknown trace or business key is exit code 2."""
    try:
        return asyncio.run(_call(coro_fn))
    except TraceNotFoundError as exc:
        print(f"flightrec: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"flightrec: {exc}", file=sys.stderr)
        return 2


async def _call(coro_fn: Callable[[], Awaitable[int]]) -> int:
    return await coro_fn()


class ProgressBar:
    """A one-line progress bar on stderr (``done/total``), redrawn in place."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        filled = int(self._width * done / total) if total else self._width
        bar = "#" * filled + "-" * (self._width - filled)
        self._stream.write(f"\r{self._label} [{bar}] {done}/{total}")
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """End the line so following output starts clean."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
