"""Regenerate the golden logs: ``python tests/replay/make_golden.py``.

Runs the real runner with the loan agent, the offline ``PolicyModel`` and the
real loan tools against an in-process bureau simulator, tokenises PII with the
recorder's guard and seals the hash chain as the recorder does, then writes
``golden/loan_<profile>.jsonl``. No broker and no registry are needed.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).parent))

from agents.context import RunContext, derive_trace_id
from agents.loan_agent import build_model, loan_agent
from agents.runner import run_agent
from contracts.chain import ChainSealer
from contracts.events import CotEvent, SourceRef
from contracts.settings import Settings
from flightrec.synthetic import synthetic_applications
from recorder.pii import PiiGuard
from tools.bureau import build_app
from tools.http import HttpClient
from tools.loan_tools import build_loan_toolset

from golden_io import GOLDEN_DIR, write_golden

FIXED_NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
APPLICATIONS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def generate(profile: str = "standard") -> list[CotEvent]:
    """Run the loan agent over a fixed set of applications; return the sealed events."""
    port = _free_port()
    runner = web.AppRunner(build_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settings = Settings(bureau_url=f"http://127.0.0.1:{port}", model_profile=profile)
    events: list[CotEvent] = []
    try:
        async with HttpClient(settings) as http:
            agent = loan_agent(profile=profile)
            tools = build_loan_toolset(settings, http, allowed=agent.tools)
            model = build_model(settings)
            guard = PiiGuard(settings)
            for offset, application in enumerate(
                synthetic_applications(APPLICATIONS, seed=11, run_id="golden", now=FIXED_NOW)
            ):
                source = SourceRef(
                    topic="loan.applications",
                    partition=0,
                    offset=offset,
                    key=application.application_id,
                )
                ctx = RunContext(
                    trace_id=derive_trace_id(source),
                    attempt=1,
                    source=source,
                    clock=lambda: FIXED_NOW,
                )
                input_view, vault = guard.tokenize(application)
                sealer = ChainSealer()
                async for event in run_agent(
                    agent,
                    model=model,
                    tools=tools,
                    ctx=ctx,
                    application_id=application.application_id,
                    input_view=input_view,
                    pii_vault=vault,
                ):
                    events.append(sealer.seal(event))
    finally:
        await runner.cleanup()
    return events


def main() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    for profile in ("standard",):
        events = asyncio.run(generate(profile))
        write_golden(GOLDEN_DIR / f"loan_{profile}.jsonl", events)
        print(f"wrote {len(events)} events to golden/loan_{profile}.jsonl")


if __name__ == "__main__":
    main()
