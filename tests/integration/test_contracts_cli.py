"""``flightrec contracts apply|check|show`` end to end against the real registry."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from cli_support import run_cli
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from flightrec.agents.registry import known_agents
from flightrec.contracts.schema_files import CONTRACTS, DEFAULT_SCHEMA_DIR, contract, subject_for
from flightrec.contracts.settings import Settings

pytestmark = pytest.mark.integration


def test_apply_then_apply_again_is_a_no_op(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    # flightrec's own contracts and those of every installed agent (the claims
    # example's input and decision subjects, when it is installed).
    subjects = {subject_for(spec, settings) for spec in CONTRACTS} | {
        subject_for(spec, settings) for spec in known_agents(settings).contracts()
    }
    code, out = run_cli(monkeypatch, capsys, settings, "contracts", "apply", "--dry-run")
    assert code == 0 and out.count("NEW_SUBJECT") == len(subjects) and out.startswith("plan:")
    assert all(subject in out for subject in subjects)
    code, out = run_cli(monkeypatch, capsys, settings, "contracts", "apply")
    # The plan first, then what was registered.
    plan, _, applied = out.partition("applied:\n")
    assert code == 0 and plan.startswith("plan:\n") and plan.count("NEW_SUBJECT") == len(subjects)
    assert "registered=" not in plan and applied.count("registered=v1") == len(subjects)
    code, out = run_cli(monkeypatch, capsys, settings, "contracts", "apply")
    plan, _, applied = out.partition("applied:\n")
    assert code == 0 and plan.count("UNCHANGED") == len(subjects) and "no changes" in applied
    subject = subject_for(contract("cot_event"), settings)
    code, out = run_cli(
        monkeypatch, capsys, settings, "contracts", "show", subject, "--version", "1"
    )
    assert code == 0
    shown = json.loads(out)
    assert shown["version"] == 1 and shown["schema"]["name"] == "CotEvent"


def test_check_fails_on_an_incompatible_local_edit(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    tmp_path: Path,
) -> None:
    assert run_cli(monkeypatch, capsys, settings, "contracts", "apply")[0] == 0
    code, out = run_cli(monkeypatch, capsys, settings, "contracts", "check")
    assert code == 0 and "INCOMPATIBLE" not in out

    schema_dir = tmp_path / "schemas"
    shutil.copytree(DEFAULT_SCHEMA_DIR, schema_dir)
    path = schema_dir / "replay_result.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "reviewer", "type": "string"})  # no default: breaks BACKWARD
    path.write_text(json.dumps(schema))

    code, out = run_cli(
        monkeypatch, capsys, settings, "contracts", "check", "--schema-dir", str(schema_dir)
    )
    assert code == 1
    assert "INCOMPATIBLE" in out and "reviewer" in out
    code, out = run_cli(
        monkeypatch, capsys, settings, "contracts", "apply", "--schema-dir", str(schema_dir)
    )
    assert code == 1
    assert out.startswith("plan:\n") and "INCOMPATIBLE" in out and "applied:" not in out
    assert "nothing was registered" in out
    replays = subject_for(contract("replay_result"), settings)
    code, out = run_cli(monkeypatch, capsys, settings, "contracts", "show", replays)
    assert code == 0 and json.loads(out)["version"] == 1


def _retention_ms(settings: Settings, topic: str) -> int:
    admin = AdminClient(settings.kafka_client_config())
    resource = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return int(entries["retention.ms"].value)


def _settled_retention_ms(settings: Settings, topic: str, expected: int) -> int:
    """``retention.ms`` of ``topic`` once it reads ``expected`` (or after 15 s):
    a config change reaches the broker's view through the metadata log, shortly
    after the admin call returns."""
    deadline = time.monotonic() + 15.0
    value = _retention_ms(settings, topic)
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        value = _retention_ms(settings, topic)
    return value


def test_apply_refuses_a_topic_below_the_retention_profile_and_fix_raises_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    thirty_days = 30 * 86_400_000
    cot = settings.topics.cot
    admin = AdminClient(settings.kafka_client_config())
    shortened = ConfigResource(
        ResourceType.TOPIC,
        cot,
        incremental_configs=[
            ConfigEntry(
                "retention.ms", str(thirty_days), incremental_operation=AlterConfigOpType.SET
            )
        ],
    )
    admin.incremental_alter_configs([shortened])[shortened].result(timeout=30)
    assert _settled_retention_ms(settings, cot, thirty_days) == thirty_days

    code, out = run_cli(
        monkeypatch, capsys, settings, "contracts", "apply", "--retention", "eu-ai-act"
    )
    # Refused before any schema is registered, naming the topic and its retention.
    assert code == 1 and "plan:" not in out
    assert f"{cot}: retention 30 days" in out and "--fix" in out
    assert _retention_ms(settings, cot) == thirty_days

    code, out = run_cli(
        monkeypatch, capsys, settings, "contracts", "apply", "--retention", "eu-ai-act", "--fix"
    )
    assert code == 0 and f"raised {cot}: retention 30 days" in out
    assert _settled_retention_ms(settings, cot, 183 * 86_400_000) == 183 * 86_400_000
    # Compliant now: a second apply has nothing to raise.
    code, out = run_cli(
        monkeypatch, capsys, settings, "contracts", "apply", "--retention", "eu-ai-act"
    )
    assert code == 0 and "raised" not in out
