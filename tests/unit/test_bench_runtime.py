"""``flightrec bench runtime``: its figures (Little's bound, efficiency, ratios), the
JSON shape, RSS reading, the ``DelayedModel`` knob, and the LangGraph peer against
the loan agent's own runs on a few inputs (skipped without the ``bench`` extra)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flightrec.agents.context import RunContext
from flightrec.agents.loan_agent import LOAN_AGENT, loan_agent
from flightrec.agents.loan_samples import synthetic_applications
from flightrec.agents.model import Message, ModelInfo, ModelRequest, ModelTurn
from flightrec.agents.models.delayed import DelayedModel
from flightrec.agents.models.policy import PolicyModel
from flightrec.agents.registry import build_model
from flightrec.agents.runner import run_agent
from flightrec.benches._langgraph_peer import peer_missing
from flightrec.benches.runtime import (
    InstantFigures,
    LatencyFigures,
    RuntimeFigures,
    in_flight_setting,
    little_bound,
    read_rss_mb,
)
from flightrec.contracts.events import LoanApplication, SourceRef
from flightrec.contracts.settings import Settings
from flightrec.recorder.pii import PiiGuard
from flightrec.tools.http import HttpClient
from flightrec.tools.loan_tools import build_loan_toolset

NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def figures(peer: bool = True) -> RuntimeFigures:
    return RuntimeFigures(
        events=300,
        instant=InstantFigures(flightrec_dps=120.0, peer_rps=80.0 if peer else None),
        latency=LatencyFigures(
            model_latency_ms=200.0,
            in_flight=4,
            flightrec_dps=2.5,
            model_calls_per_run=6.25,
            peer_rps=2.0 if peer else None,
        ),
        rss_mb=150.04,
        peer_note=None if peer else "LangGraph peer not measured: not installed",
    )


def test_little_bound_is_in_flight_over_run_latency() -> None:
    # 4 runs in flight, each 5 calls of 200 ms (1 s): 4 runs a second.
    assert little_bound(4, 5, 200.0) == pytest.approx(4.0)
    assert little_bound(256, 6.25, 200.0) == pytest.approx(204.8)
    assert little_bound(4, 0, 200.0) == 0.0  # no model calls: no bound to speak of


def test_figures_bound_efficiency_and_ratios() -> None:
    f = figures()
    assert f.latency.bound_dps == pytest.approx(3.2)  # 4 / 1.25 s
    assert f.latency.efficiency == pytest.approx(0.781)
    assert f.latency.ratio == pytest.approx(1.25)
    assert f.instant.ratio == pytest.approx(1.5)


def test_json_has_exactly_the_documented_shape() -> None:
    document = json.loads(json.dumps(figures().to_json()))
    assert document == {
        "instant": {"flightrec_dps": 120.0, "peer_rps": 80.0, "ratio": 1.5},
        "latency": {
            "model_latency_ms": 200.0,
            "in_flight": 4,
            "flightrec_dps": 2.5,
            "bound_dps": 3.2,
            "efficiency": 0.781,
            "peer_rps": 2.0,
            "ratio": 1.25,
        },
        "rss_mb": 150.0,
    }


def test_without_the_peer_its_figures_are_null_and_the_text_says_why() -> None:
    f = figures(peer=False)
    document = f.to_json()
    assert document["instant"]["peer_rps"] is None and document["instant"]["ratio"] is None
    assert document["latency"]["peer_rps"] is None and document["latency"]["ratio"] is None
    assert document["latency"]["efficiency"] == pytest.approx(0.781)  # flightrec's own figure
    text = f.render()
    assert "not installed" in text and "n/a" in text


def test_text_shows_each_figure_with_its_meaning() -> None:
    text = figures().render()
    for shown in ("120.0 decisions/s", "80.0 runs/s", "1.50x", "3.2 decisions/s", "0.78x"):
        assert shown in text
    assert "Little's law" in text and "MODEL_CALL" in text and "150.0 MB" in text
    assert "FLIGHTREC_WORKER_CONCURRENCY" in text


def test_in_flight_setting_is_read_from_settings() -> None:
    name, value = in_flight_setting(Settings())
    assert name in Settings.model_fields
    assert value == getattr(Settings(), name)


def test_read_rss_of_this_process(tmp_path: Path) -> None:
    import os

    assert read_rss_mb(os.getpid()) > 1.0
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "status").write_text("Name:\tpython\nVmRSS:\t  204800 kB\n")
    assert read_rss_mb(7, proc=tmp_path) == 200.0


class CountingModel:
    """An inner model that answers at once and counts its calls."""

    def __init__(self) -> None:
        self.inner = PolicyModel()
        self.calls = 0
        self.closed = False

    @property
    def info(self) -> ModelInfo:
        return self.inner.info

    async def next_step(self, request: ModelRequest) -> ModelTurn:
        self.calls += 1
        return await self.inner.next_step(request)

    async def aclose(self) -> None:
        self.closed = True


async def test_model_latency_setting_delays_every_call() -> None:
    assert isinstance(build_model(LOAN_AGENT, Settings()), PolicyModel)
    built = build_model(LOAN_AGENT, Settings(model_latency_ms=30))
    assert isinstance(built, DelayedModel)
    assert built.info == PolicyModel().info  # what answers is unchanged
    inner = CountingModel()
    model = DelayedModel(inner, 0.03)
    request = ModelRequest(transcript=[Message(role="user", content="{}")])
    started = time.perf_counter()
    turn = await model.next_step(request)
    assert time.perf_counter() - started >= 0.03
    assert inner.calls == 1
    assert turn.output == (await PolicyModel().next_step(request)).output
    await model.aclose()
    assert inner.closed


# ------------------------------------------------------------------ the peer

needs_peer = pytest.mark.skipif(peer_missing(), reason="the bench extra (LangGraph) is missing")


async def flightrec_run(
    settings: Settings, http: HttpClient, app: LoanApplication
) -> tuple[str, int]:
    """The loan agent's outcome and model calls for ``app``, run by flightrec's runner."""
    agent = loan_agent()
    view, vault = PiiGuard(settings).tokenize(app)
    ctx = RunContext(
        trace_id="56" * 16,
        attempt=1,
        source=SourceRef(topic="loan.applications", partition=0, offset=0),
        clock=lambda: NOW,
    )
    events = [
        e
        async for e in run_agent(
            agent,
            model=build_model(LOAN_AGENT, settings),
            tools=build_loan_toolset(settings, http, allowed=agent.tools),
            ctx=ctx,
            business_key=app.application_id,
            input_view=view,
            pii_vault=vault,
        )
    ]
    outcome = next(e for e in events if e.kind == "DECISION").outcome
    return str(outcome), sum(1 for e in events if e.kind == "MODEL_CALL")


@needs_peer
async def test_peer_decides_as_the_loan_agent_with_as_many_model_calls(
    env: tuple[Settings, HttpClient], tmp_path: Path
) -> None:
    from flightrec.benches._langgraph_peer import run_peer

    settings, http = env
    # 20 applications: approvals, referrals, eligibility declines, and index 17,
    # whose bureau answers 500 (retried once, then referred).
    apps = synthetic_applications(20, seed=42, run_id="peer", now=NOW)
    expected = {a.application_id: await flightrec_run(settings, http, a) for a in apps}
    assert {outcome for outcome, _ in expected.values()} >= {"APPROVE", "DECLINE", "REFER"}
    result = await run_peer(
        build_loan_toolset(settings, http),
        [a.model_dump(mode="json") for a in apps],
        key_field="application_id",
        checkpoint_path=tmp_path / "peer.sqlite3",
        in_flight=4,
    )
    assert {k: (result["outcomes"][k], result["model_calls"][k]) for k in expected} == expected
    assert result["runs_per_s"] > 0
    assert (tmp_path / "peer.sqlite3").stat().st_size > 0  # every run was checkpointed


@needs_peer
async def test_peer_waits_the_model_latency_per_call_and_runs_k_at_once(
    env: tuple[Settings, HttpClient], tmp_path: Path
) -> None:
    from flightrec.benches._langgraph_peer import run_peer

    settings, http = env
    apps = synthetic_applications(4, seed=42, run_id="lat", now=NOW)
    started = time.perf_counter()
    result = await run_peer(
        build_loan_toolset(settings, http),
        [a.model_dump(mode="json") for a in apps],
        key_field="application_id",
        checkpoint_path=tmp_path / "peer.sqlite3",
        latency_s=0.05,
        in_flight=4,
    )
    elapsed = time.perf_counter() - started
    longest = max(result["model_calls"].values())
    # All four at once: the batch takes about one run's latency, not four.
    assert longest * 0.05 <= elapsed < sum(result["model_calls"].values()) * 0.05
