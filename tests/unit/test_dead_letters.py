"""Dead-letter operations without a broker: what a record shows, which records a
re-drive picks, the provenance it writes, and the ``dlq`` command line.

The re-drive itself (transactions, the ``<dlq>.redrives`` log) runs on the
stack: ``tests/integration/test_dlq_cli.py``.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from flightrec.cli import build_parser
from flightrec.contracts import headers as h
from flightrec.contracts.errors import ConfigError
from flightrec.contracts.pii_keys import LocalPiiKeyring
from flightrec.contracts.settings import Settings
from flightrec.dead_letters import (
    DeadLetter,
    redrive_headers,
    redrives_topic,
    select_for_redrive,
)
from flightrec.recorder.dlq_cipher import DlqCipher

RING = LocalPiiKeyring({"k1": "one", "k2": "two"}, "k2", source="test")


def worker_letter(cipher: DlqCipher, offset: int, value: bytes = b"input") -> DeadLetter:
    return DeadLetter(
        "apps.dlq",
        0,
        offset,
        b"app-1",
        cipher.encrypt(value),
        {
            h.DLQ_SOURCE_TOPIC: b"apps",
            h.DLQ_SOURCE_PARTITION: b"3",
            h.DLQ_SOURCE_OFFSET: b"41",
            h.DLQ_ERROR_CLASS: b"RuleViolationError",
            h.DLQ_ERROR_MESSAGE: b"amount must be positive",
            h.DLQ_ERROR_RULE: b"application_amount",
            h.DLQ_ERROR_TIME: b"2026-12-02T10:00:00+00:00",
            h.DLQ_TRACE_ID: b"ab" * 16,
            h.DLQ_ENCRYPTION: f"{cipher.algorithm};{cipher.key_id}".encode(),
        },
    )


RULE_LETTER = DeadLetter(
    "apps.dlq",
    0,
    9,
    None,
    b'{"applicant_name": "hmac-sha256:k1:00"}',
    {h.RULE_NAME: b"application_name", h.RULE_EXCEPTION: b"too short", h.RULE_TOPIC: b"apps"},
)


def test_a_worker_dead_letter_shows_its_failure_and_source() -> None:
    letter = worker_letter(DlqCipher(Settings(), RING), 5)
    assert letter.id == "apps.dlq:0:5"
    assert letter.reason == "RuleViolationError: amount must be positive"
    assert letter.rule == "application_amount"
    assert letter.source == "apps:3@41"
    assert letter.time == "2026-12-02T10:00:00+00:00"
    assert letter.redrivable
    assert RULE_LETTER.rule == "application_name" and RULE_LETTER.source == "apps"
    assert not RULE_LETTER.redrivable


def test_reveal_decrypts_with_the_key_the_header_names() -> None:
    before = DlqCipher(Settings(), LocalPiiKeyring({"k1": "one"}, "k1", source="test"))
    old = worker_letter(before, 1, b"old input")
    assert old.reveal(DlqCipher(Settings(), RING)) == b"old input"  # k1, not the active k2
    with pytest.raises(ConfigError, match="unknown PII key id"):
        old.reveal(DlqCipher(Settings(pii_hmac_key=SecretStr("x"), pii_key_id="k3")))
    with pytest.raises(ConfigError, match="holds no encrypted input"):
        RULE_LETTER.reveal(DlqCipher(Settings(), RING))


def test_select_skips_redriven_and_rule_letters_and_refuses_unknown_ids() -> None:
    cipher = DlqCipher(Settings(), RING)
    letters = [worker_letter(cipher, 1), worker_letter(cipher, 2), RULE_LETTER]
    chosen, skipped = select_for_redrive(letters, {"apps.dlq:0:1"}, None)
    assert [c.id for c in chosen] == ["apps.dlq:0:2"]
    assert skipped == [
        "apps.dlq:0:1: already re-driven",
        "apps.dlq:0:9: a rule's dead letter holds no input to re-drive",
    ]
    chosen, _ = select_for_redrive(letters, set(), ["apps.dlq:0:2", "apps.dlq:0:2"])
    assert [c.id for c in chosen] == ["apps.dlq:0:2"]
    with pytest.raises(ConfigError, match="no such dead letter"):
        select_for_redrive(letters, set(), ["apps.dlq:0:7"])


def test_redrive_headers_carry_provenance() -> None:
    letter = worker_letter(DlqCipher(Settings(), RING), 4)
    headers = dict(redrive_headers(letter))
    assert headers[h.DLQ_REDRIVEN_FROM] == b"apps.dlq:0:4"
    assert headers[h.DLQ_SOURCE_TOPIC] == b"apps" and headers[h.DLQ_SOURCE_OFFSET] == b"41"
    assert headers[h.DLQ_TRACE_ID] == b"ab" * 16
    assert h.DLQ_ENCRYPTION not in headers  # the re-driven value is the plain input
    assert redrives_topic("apps.dlq") == "apps.dlq.redrives"


def test_dlq_command_line() -> None:
    parser = build_parser()
    args = parser.parse_args(["dlq", "replay", "--all", "--to", "apps.retry"])
    assert (args.dlq_command, args.all, args.to) == ("replay", True, "apps.retry")
    args = parser.parse_args(["dlq", "--topic", "x.dlq", "show", "x.dlq:0:3", "--reveal"])
    assert (args.topic, args.id, args.reveal) == ("x.dlq", "x.dlq:0:3", True)
    with pytest.raises(SystemExit):
        parser.parse_args(["dlq", "replay"])  # --all or IDs
