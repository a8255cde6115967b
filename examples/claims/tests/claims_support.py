"""Helpers of the claims tests: the fixture's environment and a run of the agent."""

from __future__ import annotations

from dataclasses import dataclass

from flightrec.agents.agent import Agent
from flightrec.agents.context import RunContext
from flightrec.agents.runner import run_agent
from flightrec.contracts.events import CotEvent, SourceRef
from flightrec.contracts.settings import Settings
from flightrec.recorder.pii import PiiGuard
from flightrec.tools.http import HttpClient
from flightrec_claims.agent import CLAIMS_AGENT
from flightrec_claims.models import Claim


@dataclass(frozen=True)
class ClaimsEnv:
    """A running simulator (``url``), settings and an open HTTP client."""

    url: str
    settings: Settings
    http: HttpClient


async def run_claim(env: ClaimsEnv, claim: Claim, agent: Agent | None = None) -> list[CotEvent]:
    """Every CoT event of one run of the claims agent (offline model, real tools)."""
    agent = agent or CLAIMS_AGENT.agent(env.settings.model_profile)
    view, vault = PiiGuard(env.settings, CLAIMS_AGENT.pii_fields).tokenize(claim)
    ctx = RunContext(
        trace_id="c1" * 16,
        attempt=1,
        source=SourceRef(topic="claims.submitted", partition=0, offset=0),
        clock=lambda: claim.submitted_at,
    )
    return [
        event
        async for event in run_agent(
            agent,
            model=CLAIMS_AGENT.offline_model(env.settings),
            tools=CLAIMS_AGENT.build_toolset(env.settings, env.http),
            ctx=ctx,
            business_key=CLAIMS_AGENT.key_of(claim),
            input_view=view,
            pii_vault=vault,
        )
    ]
