"""The peer of ``flightrec bench runtime``: the loan agent's steps as a LangGraph graph.

Same shape as a loan run under the offline ``PolicyModel``: one node per model
step (summary thought, ``policy_lookup``, ``credit_bureau_report``,
``verify_income``, ``affordability``, weighing thought, decision), each first
"calling the model" (``asyncio.sleep`` of the latency, zero for an instant
model) and then doing that step's work with flightrec's own loan tools (the
same toolset, so the same HTTP calls to the bureau). Hard knock-outs skip the
bureau, a failed tool is retried once (one more model call) and otherwise
refers the case, as the ``PolicyModel`` does. The verdict is the policy's own
(:func:`~flightrec.agents.models.policy.underwrite`).

State is checkpointed after every node by LangGraph's SQLite checkpointer
(``AsyncSqliteSaver``), with ``durability="async"``: a step is written while the
next runs and the run returns once all are written, as flightrec's recorder
sends each CoT event at once and confirms them all before the decision.

LangGraph is the optional ``bench`` extra, never a dependency of flightrec:
:func:`peer_missing` says whether it is installed; everything here imports it
only when called.
"""

from __future__ import annotations

import asyncio
import importlib.util
import operator
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

from flightrec.agents.models.policy import eligibility, underwrite
from flightrec.tools.base import ToolExecutor

__all__ = ["PEER_MISSING", "PeerResult", "build_peer_graph", "peer_missing", "run_peer"]

PEER_MISSING = (
    "LangGraph peer not measured: LangGraph is not installed "
    "(pip install 'flightrec[bench]' installs langgraph and its SQLite checkpointer)"
)
"""What the bench says instead of the peer's figures when the extra is missing."""

_PEER_MODULES = ("langgraph", "langgraph.checkpoint.sqlite", "aiosqlite")
_TOOL_TRIES = 2  # as the PolicyModel: a retryable failure is tried once more


def peer_missing() -> bool:
    """Whether the ``bench`` extra (LangGraph, its SQLite checkpointer) is missing."""
    try:
        return any(importlib.util.find_spec(name) is None for name in _PEER_MODULES)
    except ModuleNotFoundError:  # a parent package is missing
        return True


class LoanState(TypedDict, total=False):
    """What a peer run carries from node to node (checkpointed after each)."""

    app: dict[str, Any]
    results: dict[str, dict[str, Any]]
    knockouts: list[str]
    failed: str
    outcome: str
    model_calls: Annotated[int, operator.add]


_Node = Callable[[LoanState], Coroutine[Any, Any, dict[str, Any]]]


class _Steps:
    """The graph's nodes: a model call (a sleep), then the step's work."""

    def __init__(self, tools: ToolExecutor, latency_s: float, profile: str) -> None:
        self._tools = tools
        self._latency_s = latency_s
        self._profile = profile

    async def _model(self) -> None:
        # An instant model still yields once, as an awaited model call does.
        await asyncio.sleep(self._latency_s)

    async def thought(self, _state: LoanState) -> dict[str, Any]:
        await self._model()
        return {"model_calls": 1}

    def tool(self, name: str, arguments: Callable[[LoanState], Mapping[str, Any]]) -> _Node:
        async def node(state: LoanState) -> dict[str, Any]:
            calls = 0
            for attempt in range(_TOOL_TRIES):
                await self._model()
                calls += 1
                outcome = await self._tools.call(
                    name, arguments(state), call_id=f"{name}-{attempt}"
                )
                if outcome.status == "ok" and outcome.result is not None:
                    results = {**state.get("results", {}), name: outcome.result}
                    update: dict[str, Any] = {"results": results, "model_calls": calls}
                    if name == "policy_lookup":
                        update["knockouts"] = eligibility(state["app"], outcome.result)
                    return update
                if not outcome.retryable:
                    break
            return {"failed": name, "model_calls": calls}

        return node

    async def decide(self, state: LoanState) -> dict[str, Any]:
        await self._model()
        results = state.get("results", {})
        if state.get("failed"):
            outcome = "REFER"
        elif state.get("knockouts"):
            outcome = "DECLINE"
        else:
            outcome, _reasons, _conditions, _confidence = underwrite(
                state["app"],
                results["policy_lookup"],
                results["credit_bureau_report"],
                results["verify_income"],
                results["affordability"],
            )
        return {"outcome": outcome, "model_calls": 1}

    def policy_args(self, _state: LoanState) -> Mapping[str, Any]:
        return {"profile": self._profile}


def _credit_args(state: LoanState) -> Mapping[str, Any]:
    return {"national_id": state["app"]["national_id"]}


def _income_args(state: LoanState) -> Mapping[str, Any]:
    app = state["app"]
    return {
        "application_id": app["application_id"],
        "declared_annual_income": app["annual_income"],
        "employment_status": app["employment_status"],
        "employment_years": app["employment_years"],
    }


def _affordability_args(state: LoanState) -> Mapping[str, Any]:
    app, results = state["app"], state.get("results", {})
    income, policy = results["verify_income"], results["policy_lookup"]
    declared = float(app["annual_income"])
    # The PolicyModel's basis: never more than the verified income.
    basis = (
        min(declared, float(income["verified_annual_income"]))
        if income.get("verified")
        else declared
    )
    return {
        "amount": app["amount"],
        "term_months": app["term_months"],
        "annual_income": basis,
        "monthly_debt_payments": app["monthly_debt_payments"],
        "annual_rate": policy["annual_rate"],
    }


def build_peer_graph(
    tools: ToolExecutor, *, latency_s: float = 0.0, profile: str = "standard"
) -> Any:
    """The uncompiled ``StateGraph`` of a loan run (see the module docstring)."""
    from langgraph.graph import END, START, StateGraph

    steps = _Steps(tools, latency_s, profile)
    graph: Any = StateGraph(LoanState)
    graph.add_node("summary", steps.thought)
    graph.add_node("policy_lookup", steps.tool("policy_lookup", steps.policy_args))
    graph.add_node("credit_bureau_report", steps.tool("credit_bureau_report", _credit_args))
    graph.add_node("verify_income", steps.tool("verify_income", _income_args))
    graph.add_node("affordability", steps.tool("affordability", _affordability_args))
    graph.add_node("weigh", steps.thought)
    graph.add_node("decide", steps.decide)
    graph.add_edge(START, "summary")
    graph.add_edge("summary", "policy_lookup")

    def after(next_node: str) -> Callable[[LoanState], str]:
        def route(state: LoanState) -> str:
            if state.get("failed"):
                return "decide"
            if state.get("knockouts"):
                return "weigh"  # declined on eligibility: no bureau
            return next_node

        return route

    graph.add_conditional_edges("policy_lookup", after("credit_bureau_report"))
    graph.add_conditional_edges("credit_bureau_report", after("verify_income"))
    graph.add_conditional_edges("verify_income", after("affordability"))
    graph.add_conditional_edges("affordability", after("weigh"))
    graph.add_edge("weigh", "decide")
    graph.add_edge("decide", END)
    return graph


class PeerResult(TypedDict):
    """One measured batch: runs per second, each run's outcome and model calls."""

    runs_per_s: float
    outcomes: dict[str, str]
    model_calls: dict[str, int]


async def run_peer(
    tools: ToolExecutor,
    inputs: Sequence[Mapping[str, Any]],
    *,
    key_field: str,
    checkpoint_path: Path,
    latency_s: float = 0.0,
    in_flight: int = 1,
    profile: str = "standard",
) -> PeerResult:
    """Run the graph on every input, at most ``in_flight`` at once, checkpointing to
    SQLite at ``checkpoint_path``; the rate is from the first start to the last end."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    slots = asyncio.Semaphore(max(1, in_flight))
    outcomes: dict[str, str] = {}
    calls: dict[str, int] = {}
    async with AsyncSqliteSaver.from_conn_string(str(checkpoint_path)) as saver:
        app = build_peer_graph(tools, latency_s=latency_s, profile=profile).compile(
            checkpointer=saver
        )

        async def one(record: Mapping[str, Any]) -> None:
            key = str(record[key_field])
            async with slots:
                final = await app.ainvoke(
                    {"app": dict(record), "model_calls": 0},
                    {"configurable": {"thread_id": key}},
                    durability="async",
                )
            outcomes[key] = str(final["outcome"])
            calls[key] = int(final["model_calls"])

        started = time.perf_counter()
        await asyncio.gather(*(one(record) for record in inputs))
        elapsed = time.perf_counter() - started
    return PeerResult(
        runs_per_s=len(inputs) / elapsed if elapsed > 0 else 0.0,
        outcomes=outcomes,
        model_calls=calls,
    )
