"""Running ``flightrec`` commands in-process against the test stack."""

from __future__ import annotations

import pytest

from flightrec.cli import main
from flightrec.contracts.settings import Settings


def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: Settings,
    *argv: str,
) -> tuple[int, str]:
    """``(exit code, stdout)`` of ``flightrec ARGV`` with ``settings`` in the environment."""
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    code = main(list(argv))
    return code, capsys.readouterr().out
