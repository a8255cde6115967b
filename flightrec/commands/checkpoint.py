"""``flightrec checkpoint export [--out FILE] [--since ISO]`` and ``checkpoint verify FILE``.

Exit codes of verify: 0 every checkpoint checks out; 1 one does not (its
signature, or the CoT log at an offset it names); 2 the file cannot be read or
holds no checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flightrec.checkpoint_audit import CheckpointVerifier, KafkaCotLog, export_checkpoints
from flightrec.contracts.codec import Codec
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing_keys import keyring_for
from flightrec.replay.cli import run_command, time_arg
from flightrec.replay.reader import CotReader
from flightrec.replay.selectors import parse_time

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``checkpoint export`` and ``checkpoint verify``."""
    checkpoint: argparse.ArgumentParser = subparsers.add_parser(
        "checkpoint", help="export the signed checkpoints of the CoT log, or verify an export"
    )
    commands = checkpoint.add_subparsers(dest="checkpoint_command", metavar="COMMAND")
    export = commands.add_parser(
        "export", help="write the checkpoint topic as JSON lines, to keep outside Kafka"
    )
    export.add_argument("--out", type=Path, metavar="FILE", help="write to FILE, not stdout")
    export.add_argument(
        "--since", type=time_arg, help="only checkpoints written since (ISO time or 2h ago)"
    )
    export.set_defaults(handler=_export)
    verify = commands.add_parser(
        "verify", help="check an export's signatures and that the CoT log still holds each head"
    )
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.set_defaults(handler=_verify)


def _export(args: argparse.Namespace, settings: Settings) -> int:
    async def body() -> int:
        since = parse_time(args.since) if args.since else None
        async with CotReader(settings, topic=settings.topics.checkpoints) as reader:
            if args.out is None:
                count = await export_checkpoints(reader, sys.stdout, since)
            else:
                with args.out.open("w", encoding="utf-8") as out:
                    count = await export_checkpoints(reader, out, since)
        print(f"{count} checkpoint(s) exported", file=sys.stderr)
        return 0

    return run_command(body)


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    try:
        lines = args.file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"flightrec: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    if not any(line.strip() for line in lines):
        print(f"flightrec: {args.file} holds no checkpoint", file=sys.stderr)
        return 2

    async def body() -> int:
        keyring = keyring_for(settings)
        codec = Codec(settings, contracts=("cot_event",))
        await codec.start()
        try:
            async with CotReader(settings, codec) as reader:
                verifier = CheckpointVerifier(keyring, KafkaCotLog(reader))
                verdicts = await verifier.verify_lines(lines)
        finally:
            await codec.close()
        for verdict in verdicts:
            print(verdict.describe())
        failed = sum(not verdict.ok for verdict in verdicts)
        print(f"{len(verdicts)} checkpoint(s), {failed} with problems", file=sys.stderr)
        return 1 if failed else 0

    return run_command(body)
