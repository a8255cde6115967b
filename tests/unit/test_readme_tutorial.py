"""The README's "Write your own agent" runs as written.

Each code block of the tutorial names the file it comes from
(```` ```python file=PATH ````); it must appear in that file word for word, so
the tutorial is the claims example's code. That code then runs: the agent the
tutorial registers loads, its definition derives its contracts with the PII
tags of its marked fields, and it decides sample claims against its simulator
over loopback HTTP. Every ``flightrec`` command the tutorial shows parses.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flightrec.agents.context import RunContext
from flightrec.agents.registry import build_model, load_agent
from flightrec.agents.runner import run_agent
from flightrec.cli import build_parser
from flightrec.contracts.events import Decision, RunCompleted, SourceRef
from flightrec.contracts.schema_files import pii_fields
from flightrec.contracts.settings import Settings
from flightrec.recorder.pii import PiiGuard
from flightrec.tools.http import HttpClient
from flightrec_claims.simulator import start_simulator
from flightrec_claims.tools import CLAIMS_URL_ENV

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```(\w+)(?: file=(\S+))?\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _tutorial() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Write your own agent")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def _blocks(language: str | None = None) -> list[tuple[str, str | None, str]]:
    found = [(m[1], m[2], m[3]) for m in BLOCK.finditer(_tutorial())]
    return [b for b in found if language is None or b[0] == language]


def test_every_code_block_is_the_example_agents_code_word_for_word() -> None:
    files = [path for _, path, _ in _blocks() if path is not None]
    assert {
        "examples/claims/flightrec_claims/models.py",
        "examples/claims/flightrec_claims/tools.py",
        "examples/claims/flightrec_claims/agent.py",
        "examples/claims/pyproject.toml",
    } <= set(files)
    for _, path, code in _blocks():
        if path is None:
            continue
        source = (ROOT / path).read_text(encoding="utf-8")
        assert code.rstrip("\n") in source, f"the tutorial's block from {path} is not in it"


async def test_the_tutorials_agent_loads_and_decides_claims(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (toml,) = [code for lang, _, code in _blocks("toml")]
    reference = re.search(r'"([\w.]+:\w+)"', toml)
    assert reference is not None
    definition = load_agent(reference[1])
    assert definition.name == "claims-triage"
    # The PII marks of the tutorial's models become tags of the derived schema.
    input_contract, _ = definition.contracts
    assert input_contract.schema is not None
    assert pii_fields(dict(input_contract.schema)) == definition.pii_fields
    assert {"policy_number", "claimant_name"} <= definition.pii_fields

    simulator = await start_simulator(port=0)
    try:
        monkeypatch.setenv(CLAIMS_URL_ENV, f"http://127.0.0.1:{simulator.addresses[0][1]}")
        settings = Settings()
        now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        assert definition.samples is not None
        claims = definition.samples(6, seed=3, run_id="readme")
        guard = PiiGuard(settings)
        agent = definition.agent()
        outcomes = []
        async with HttpClient(settings) as http:
            tools = definition.build_toolset(settings, http)
            for index, claim in enumerate(claims):
                view, vault = guard.tokenize(claim, definition.pii_fields)
                ctx = RunContext(
                    trace_id=f"{index + 1:032x}",
                    attempt=1,
                    source=SourceRef(topic="claims.submitted", partition=0, offset=index),
                    clock=lambda: now,
                )
                events = [
                    e
                    async for e in run_agent(
                        agent,
                        model=build_model(definition, settings),
                        tools=tools,
                        ctx=ctx,
                        business_key=definition.key_of(claim),
                        input_view=view,
                        pii_vault=vault,
                    )
                ]
                assert isinstance(events[-1], RunCompleted), events[-1]
                (decision,) = [e for e in events if isinstance(e, Decision)]
                assert decision.business_key == claim.claim_id
                assert decision.outcome in definition.outcomes
                outcomes.append(decision.outcome)
        assert len(set(outcomes)) >= 2, outcomes
    finally:
        await simulator.cleanup()


def test_every_command_the_tutorial_shows_parses() -> None:
    parser = build_parser()
    commands = [
        line.split("#")[0].strip()
        for _, _, code in _blocks("sh")
        for line in code.splitlines()
        if line.strip().startswith(".venv/bin/flightrec")
    ]
    assert len(commands) >= 6
    for command in commands:
        argv = shlex.split(re.sub(r"<[^>]+>", "x" * 32, command))[1:]
        args = parser.parse_args(argv)
        assert getattr(args, "handler", None) is not None, command
