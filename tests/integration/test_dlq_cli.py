"""``flightrec dlq list|show|replay`` against the real broker.

Dead letters as a worker writes them (encrypted input, failure headers), under
two PII keys of a ring (one rotated out): ``list`` shows their failure and
source, ``show`` keeps the input encrypted unless ``--reveal``, and ``replay``
re-drives each to its input topic with provenance headers exactly once: a
second ``replay --all`` writes nothing more, and the ``<dlq>.redrives`` log
holds one entry per re-driven record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import run_cli
from confluent_kafka import Producer
from pydantic import SecretStr

from flightrec.contracts.headers import (
    DLQ_ENCRYPTION,
    DLQ_ERROR_CLASS,
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_TIME,
    DLQ_REDRIVEN_FROM,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
)
from flightrec.contracts.pii_keys import DEVELOPMENT_PII_KEY, LocalPiiKeyring
from flightrec.contracts.settings import Settings
from flightrec.dead_letters import read_dead_letters, redrives_topic

pytestmark = pytest.mark.integration

CANARY = b'{"applicant_name": "Canary McCanaryface"}'


def _dead_letter(producer: Producer, settings: Settings, ring: LocalPiiKeyring, n: int) -> None:
    from flightrec.recorder.dlq_cipher import DlqCipher

    cipher = DlqCipher(settings, ring)
    producer.produce(
        settings.topics.applications_dlq,
        cipher.encrypt(CANARY + str(n).encode()),
        key=f"app-{n}".encode(),
        headers=[
            (DLQ_SOURCE_TOPIC, settings.topics.applications.encode()),
            (DLQ_SOURCE_PARTITION, b"0"),
            (DLQ_SOURCE_OFFSET, str(n).encode()),
            (DLQ_ERROR_CLASS, b"DecodeError"),
            (DLQ_ERROR_MESSAGE, b"not a record"),
            (DLQ_ERROR_TIME, b"2026-12-02T10:00:00+00:00"),
            (DLQ_ENCRYPTION, f"{cipher.algorithm};{cipher.key_id}".encode()),
        ],
    )


def test_list_show_and_replay_exactly_once(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    tmp_path: Path,
) -> None:
    keys = {"k1": "first-secret", "k2": "second-secret"}
    old_ring = LocalPiiKeyring({"k1": keys["k1"]}, "k1", source="test")
    ring_file = tmp_path / "ring.json"
    ring_file.write_text(json.dumps({"active": "k2", "keys": keys}))
    # The ring file replaces the one-key setting (left at its default).
    settings = settings.model_copy(
        update={"pii_keyring_file": ring_file, "pii_hmac_key": SecretStr(DEVELOPMENT_PII_KEY)}
    )
    new_ring = LocalPiiKeyring(keys, "k2", source="test")

    producer = Producer(settings.producer_config())
    _dead_letter(producer, settings, old_ring, 0)
    _dead_letter(producer, settings, new_ring, 1)
    _dead_letter(producer, settings, new_ring, 2)
    assert producer.flush(30) == 0
    dlq = settings.topics.applications_dlq

    code, out = run_cli(monkeypatch, capsys, settings, "dlq", "list")
    assert code == 0 and out.count("DecodeError: not a record") == 3, out
    assert f"source={settings.topics.applications}:0@1" in out

    code, out = run_cli(monkeypatch, capsys, settings, "dlq", "show", f"{dlq}:0:0")
    assert code == 0 and "Canary" not in out and "AES-256-GCM;k1" in out
    code, out = run_cli(monkeypatch, capsys, settings, "dlq", "show", f"{dlq}:0:0", "--reveal")
    assert code == 0 and (CANARY + b"0").decode() in out  # k1 from the ring, by header

    code, out = run_cli(monkeypatch, capsys, settings, "dlq", "replay", f"{dlq}:0:1")
    assert code == 0 and f"re-driven {dlq}:0:1" in out
    code, out = run_cli(monkeypatch, capsys, settings, "dlq", "replay", "--all")
    assert code == 0, out
    assert f"skipped {dlq}:0:1: already re-driven" in out
    assert f"re-driven {dlq}:0:0" in out and f"re-driven {dlq}:0:2" in out
    code, out = run_cli(monkeypatch, capsys, settings, "dlq", "replay", "--all")
    assert code == 0 and "re-driven" not in out.replace("already re-driven", "")

    # Read committed: the re-drives are transactional (markers take offsets).
    redriven = read_dead_letters(settings, settings.topics.applications)
    assert sorted(r.value or b"" for r in redriven) == sorted(
        CANARY + str(n).encode() for n in range(3)
    )
    assert sorted(r.headers[DLQ_REDRIVEN_FROM].decode() for r in redriven) == [
        f"{dlq}:0:{n}" for n in range(3)
    ]
    assert all(
        r.headers[DLQ_SOURCE_TOPIC] == settings.topics.applications.encode() for r in redriven
    )
    log = read_dead_letters(settings, redrives_topic(dlq))
    assert sorted((r.key or b"").decode() for r in log) == [f"{dlq}:0:{n}" for n in range(3)]
