"""Choosing traces by business key: ``--key`` and its loan name ``--application``
are one way of choosing (not two at once), ``--agent`` narrows them, and the
commands read them into a :class:`Selection`."""

from __future__ import annotations

import pytest

from flightrec.cli import build_parser, main
from flightrec.commands.replay import _selection
from flightrec.replay.selectors import Selection


def test_a_key_is_one_way_of_choosing_traces() -> None:
    Selection(business_key="CLM-1").validate()
    Selection(application_id="app-1", agent="loan-officer").validate()
    with pytest.raises(ValueError, match="--key"):
        Selection(agent="claims-triage").validate()
    for mixed in (
        Selection(business_key="CLM-1", application_id="app-1"),
        Selection(business_key="CLM-1", all=True),
        Selection(trace_ids=("a" * 32,), application_id="app-1"),
    ):
        with pytest.raises(ValueError, match="one way"):
            mixed.validate()


@pytest.mark.parametrize("command", ["verify", "reevaluate"])
def test_replay_reads_key_application_and_agent(command: str) -> None:
    extra = ["--model-profile", "strict"] if command == "reevaluate" else []
    args = build_parser().parse_args(
        ["replay", command, "--key", "CLM-1", "--agent", "claims-triage", *extra]
    )
    assert _selection(args) == Selection(business_key="CLM-1", agent="claims-triage")
    args = build_parser().parse_args(["replay", command, "--application", "app-1", *extra])
    assert _selection(args) == Selection(application_id="app-1")


@pytest.mark.parametrize(
    "argv",
    [
        ["audit"],
        ["audit", "a" * 32, "--key", "CLM-1"],
        ["audit", "--key", "CLM-1", "--application", "app-1"],
    ],
)
def test_audit_wants_exactly_one_subject(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Refused before anything is opened: no broker or registry is needed.
    assert main(argv) == 2
    assert "give one of TRACE_ID, --key KEY or --application ID" in capsys.readouterr().err
