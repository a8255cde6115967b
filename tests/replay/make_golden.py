"""Regenerate the golden logs: ``python tests/replay/make_golden.py [NAME ...]``
(``loan_standard``, ``loan_faults``; all when none is named).

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

from flightrec.agents.context import RunContext, derive_trace_id
from flightrec.agents.loan_agent import LOAN_AGENT, loan_agent
from flightrec.agents.loan_samples import synthetic_applications
from flightrec.agents.registry import build_model
from flightrec.agents.runner import run_agent
from flightrec.contracts.chain import ChainSealer
from flightrec.contracts.events import CotEvent, LoanApplication, SourceRef
from flightrec.contracts.settings import Settings
from flightrec.recorder.pii import PiiGuard
from flightrec.testing.bureau import build_app
from flightrec.tools.http import HttpClient
from flightrec.tools.loan_tools import build_loan_toolset

from golden_io import GOLDEN_DIR, write_golden

FIXED_NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
APPLICATIONS = 12
FAULT_POOL = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fault_cases(pool: list[LoanApplication]) -> list[LoanApplication]:
    """Runs that leave the happy path: the standard applications with a bureau that
    answers 500 or too slowly (a tool timeout), then those of a larger pool whose
    free text asks the agent to break its rules."""
    standard = pool[:APPLICATIONS]
    broken = [
        a.model_copy(update={"national_id": f"{('FAIL500', 'SLOW')[i % 2]}-{a.national_id}"})
        for i, a in enumerate(standard[:6])
    ]
    return broken + [a for a in pool if a.notes]


async def generate(profile: str = "standard", *, faults: bool = False) -> list[CotEvent]:
    """Run the loan agent over a fixed set of applications; return the sealed events.

    ``faults`` runs the cases of :func:`_fault_cases` instead (failing and slow
    bureau, prompt injections)."""
    port = _free_port()
    runner = web.AppRunner(build_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    # A short tool timeout: the SLOW bureau cases time out in a second, not five.
    settings = Settings(
        bureau_url=f"http://127.0.0.1:{port}", model_profile=profile, tool_timeout_s=1.0
    )
    events: list[CotEvent] = []
    try:
        async with HttpClient(settings) as http:
            agent = loan_agent(profile=profile)
            tools = build_loan_toolset(settings, http, allowed=agent.tools)
            model = build_model(LOAN_AGENT, settings)
            guard = PiiGuard(settings)
            pool = synthetic_applications(
                FAULT_POOL if faults else APPLICATIONS, seed=11, run_id="golden", now=FIXED_NOW
            )
            chosen = _fault_cases(pool) if faults else pool
            for offset, application in enumerate(chosen):
                source = SourceRef(
                    topic="loan.applications",
                    partition=1 if faults else 0,  # trace ids apart from loan_standard's
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
                    business_key=application.application_id,
                    input_view=input_view,
                    pii_vault=vault,
                ):
                    events.append(sealer.seal(event))
    finally:
        await runner.cleanup()
    return events


def main() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    for name, faults in (("loan_standard", False), ("loan_faults", True)):
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue  # regenerate only the files named on the command line
        events = asyncio.run(generate("standard", faults=faults))
        write_golden(GOLDEN_DIR / f"{name}.jsonl", events)
        print(f"wrote {len(events)} events to golden/{name}.jsonl")


if __name__ == "__main__":
    main()
