"""``flightrec dlq list | show ID [--reveal] | replay (--all | ID...) [--to TOPIC]``.

Dead-letter operations on a DLQ topic (by default the applications' DLQ):
list records with their failure headers, show one (its decrypted input only
with ``--reveal``), and re-drive records to their input topic exactly once
(see :mod:`flightrec.dead_letters`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flightrec.contracts.errors import ConfigError
from flightrec.contracts.pii_keys import load_pii_keyring
from flightrec.contracts.settings import Settings

if TYPE_CHECKING:
    from flightrec.dead_letters import DeadLetter

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``dlq list|show|replay``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dlq", help="list, show and re-drive dead letters"
    )
    parser.add_argument("--topic", help="DLQ topic (default: the applications' DLQ)")
    commands = parser.add_subparsers(dest="dlq_command", required=True)
    listing = commands.add_parser("list", help="dead letters with reason, rule, source, time")
    listing.set_defaults(handler=_list)
    show = commands.add_parser("show", help="one dead letter's headers (and input, --reveal)")
    show.add_argument("id", metavar="ID", help="topic:partition:offset, as `dlq list` shows")
    show.add_argument("--reveal", action="store_true", help="print the decrypted input")
    show.set_defaults(handler=_show)
    replay = commands.add_parser("replay", help="re-drive dead letters to their input topic")
    chosen = replay.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--all", action="store_true", help="every dead letter not yet re-driven")
    chosen.add_argument("ids", nargs="*", default=[], metavar="ID")
    replay.add_argument("--to", help="topic to write to (default: each record's source topic)")
    replay.set_defaults(handler=_replay)


def _topic(args: argparse.Namespace, settings: Settings) -> str:
    return str(args.topic or settings.topics.applications_dlq)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from flightrec.dead_letters import read_dead_letters, read_redriven

    topic = _topic(args, settings)
    done = read_redriven(settings, topic)
    for letter in read_dead_letters(settings, topic):
        mark = " (re-driven)" if letter.id in done else ""
        print(
            f"{letter.id}  {letter.time}  source={letter.source}  rule={letter.rule or '-'}  "
            f"{letter.reason}{mark}"
        )
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    from flightrec.dead_letters import read_dead_letters
    from flightrec.recorder.dlq_cipher import DlqCipher

    letter = _one(read_dead_letters(settings, _topic(args, settings)), args.id)
    print(f"id: {letter.id}")
    print(f"key: {(letter.key or b'').decode('utf-8', 'replace')}")
    for name, value in sorted(letter.headers.items()):
        print(f"{name}: {value.decode('utf-8', 'replace')}")
    if args.reveal:
        plain = letter.reveal(DlqCipher(settings, load_pii_keyring(settings)))
        print("payload:")
        print(plain.decode("utf-8", "replace"))
    elif letter.value is not None:
        print(
            f"payload: {len(letter.value)} bytes (encrypted unless a rule's; --reveal to decrypt)"
        )
    return 0


def _one(letters: Sequence[DeadLetter], wanted: str) -> DeadLetter:
    for letter in letters:
        if letter.id == wanted:
            return letter
    raise ConfigError("no such dead letter", id=wanted)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from flightrec.dead_letters import (
        read_dead_letters,
        read_redriven,
        redrive,
        select_for_redrive,
    )
    from flightrec.recorder.dlq_cipher import DlqCipher

    topic = _topic(args, settings)
    letters = read_dead_letters(settings, topic)
    # Filtered here so a record re-driven before need not be decrypted again;
    # redrive() checks once more after fencing any other re-drive of this DLQ.
    before = read_redriven(settings, topic)
    chosen, skipped = select_for_redrive(letters, before, None if args.all else args.ids)
    done, already = redrive(
        settings, chosen, DlqCipher(settings, load_pii_keyring(settings)), to_topic=args.to
    )
    for why in skipped:
        print(f"skipped {why}")
    for ident in already:
        print(f"skipped {ident}: already re-driven")
    for ident in done:
        print(f"re-driven {ident}")
    return 0
