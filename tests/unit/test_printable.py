"""Terminal control characters in recorded text are neutralised where the
commands render it: a recorded value cannot recolour, erase or forge lines."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Self

import pytest

from flightrec.commands import audit as audit_command
from flightrec.commands import trace as trace_command
from flightrec.commands.trace import render_timeline
from flightrec.printable import printable, printable_lines
from flightrec.replay.history import RunHistory, build_history
from flightrec.testing.runs import synthetic_run, synthetic_trace_id

TRACE = synthetic_trace_id(5)
HOSTILE = "app-7\x1b[2K\rAPPROVED\u202e\x9b31m"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\x1b[31mred", "\\u001b[31mred"),
        ("a\rb", "a\\u000db"),
        ("csi\x9b", "csi\\u009b"),
        ("rtl\u202eabc\u2066", "rtl\\u202eabc\\u2066"),
        ("del\x7f nul\x00", "del\\u007f nul\\u0000"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("plain ünïcode €", "plain ünïcode €"),
    ],
)
def test_printable(text: str, expected: str) -> None:
    assert printable(text) == expected


def test_printable_lines_keep_a_recorded_newline_inside_its_line() -> None:
    assert printable_lines(["key: a\nforged", "next"]) == "key: a\\u000aforged\nnext"


class _FakeService:
    """Stands in for ``ReplayService`` as the commands use it: an async context."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def _hostile_history() -> RunHistory:
    events = synthetic_run(TRACE, application_id=HOSTILE, business_key=HOSTILE)
    return build_history(TRACE, events, chain_verifier=None)


def test_the_timeline_shows_no_control_character() -> None:
    text = render_timeline(_hostile_history())
    assert "\x1b" not in text and "\r" not in text and "\x9b" not in text
    assert "\u202e" not in text
    assert "app-7\\u001b[2K\\u000dAPPROVED\\u202e\\u009b31m" in text


def test_the_audit_command_prints_no_control_character(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flightrec.cli import main

    history = _hostile_history()

    class _Service(_FakeService):
        catalog = type("Catalog", (), {"agents": ()})()

        async def select(self, selection: object) -> list[object]:
            return [history]

        async def replay_results(self, traces: object) -> list[object]:
            return []

    monkeypatch.setattr(audit_command, "ReplayService", _Service)
    assert main(["audit", TRACE]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x9b" not in out and "\u202e" not in out
    assert "app-7\\u001b[2K" in out


def test_the_traces_listing_prints_no_control_character(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flightrec.cli import main

    row = SimpleNamespace(
        trace_id=TRACE,
        first_ts=None,
        last_ts=None,
        business_key=HOSTILE,
        agent="loan\x1b]0;title\x07",
        agent_version="1",
        prompt_version="v1",
        outcome="APPROVE",
        status="COMPLETED",
        events=3,
    )

    class _Index:
        async def update(self) -> None:
            return None

        def list_sync(self, **filters: object) -> list[object]:
            return [row]

    class _Service(_FakeService):
        index = _Index()

    monkeypatch.setattr(trace_command, "ReplayService", _Service)
    assert main(["traces"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "loan\\u001b]0;title\\u0007" in out and "1 traces" in out
