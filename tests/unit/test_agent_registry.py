"""Finding agents: ``load_agent`` references, entry points, the checked
``AgentRegistry``, ``resolve_agents`` / ``known_agents`` and ``flightrec agents list``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib.metadata import EntryPoint

import pytest

from flightrec.agents import registry
from flightrec.agents.definition import AgentTopics
from flightrec.agents.loan_agent import LOAN_AGENT
from flightrec.agents.registry import (
    ENTRY_POINT_GROUP,
    AgentRegistry,
    build_model,
    discover_agents,
    known_agents,
    load_agent,
    resolve_agents,
)
from flightrec.cli import main
from flightrec.contracts.errors import AgentDefinitionError
from flightrec.contracts.settings import Settings

from refund_agent_support import REFUND_AGENT, OfflineRefundModel, refund_definition

REFUND_REF = "refund_agent_support:REFUND_AGENT"


def install(monkeypatch: pytest.MonkeyPatch, *entries: tuple[str, str]) -> list[str]:
    """Make ``entries`` (name, value) the installed ``flightrec.agents`` entry points."""
    groups: list[str] = []

    def fake_entry_points(*, group: str) -> Iterable[EntryPoint]:
        groups.append(group)
        return [EntryPoint(name=name, value=value, group=group) for name, value in entries]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    return groups


# -- load_agent ---------------------------------------------------------------------------


def test_load_agent_by_attribute_and_by_factory() -> None:
    assert load_agent(REFUND_REF) is REFUND_AGENT
    made = load_agent("refund_agent_support:make_refund_agent")
    assert made.name == "refund-desk" and made is not REFUND_AGENT
    assert load_agent("flightrec.agents.loan_agent:LOAN_AGENT") is LOAN_AGENT


@pytest.mark.parametrize(
    ("reference", "phrase"),
    [
        ("refund_agent_support.REFUND_AGENT", "'package.module:attribute'"),
        ("refund_agent_support:", "'package.module:attribute'"),
        ("no_such_team_module:AGENT", "cannot import no_such_team_module"),
        ("refund_agent_support:NO_SUCH_AGENT", "has no attribute NO_SUCH_AGENT"),
        ("refund_agent_support:NOT_A_DEFINITION", "is not an AgentDefinition (it is a str)"),
        # Callable, but what it returns is an Agent, not its definition.
        ("flightrec.agents.loan_agent:loan_agent", "is not an AgentDefinition (it is a Agent)"),
        # Callable, but not without arguments.
        ("refund_agent_support:refund_toolset", "calling it failed: TypeError"),
    ],
)
def test_load_agent_refuses_a_bad_reference(reference: str, phrase: str) -> None:
    with pytest.raises(AgentDefinitionError) as caught:
        load_agent(reference)
    exc = caught.value
    assert exc.context == {"agent": reference, "field": "reference"}
    assert phrase in str(exc) and reference in str(exc)


def test_load_agent_passes_on_the_factory_definition_error() -> None:
    # A factory whose definition is wrong: the error names the agent's field,
    # not the reference.
    with pytest.raises(AgentDefinitionError) as caught:
        load_agent("refund_agent_support:broken_refund_agent")
    assert caught.value.context == {"agent": "refund-desk", "field": "fallback_outcome"}


# -- entry points -------------------------------------------------------------------------


def test_the_loan_agent_is_installed() -> None:
    assert discover_agents()["loan-underwriter"] is LOAN_AGENT


def test_discover_reads_the_agents_group(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = install(monkeypatch, ("refund-desk", REFUND_REF))
    assert discover_agents() == {"refund-desk": REFUND_AGENT}
    assert groups == [ENTRY_POINT_GROUP] and ENTRY_POINT_GROUP == "flightrec.agents"


def test_entry_point_named_apart_from_its_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, ("refunds", REFUND_REF))
    with pytest.raises(AgentDefinitionError) as caught:
        discover_agents()
    exc = caught.value
    assert exc.context == {"agent": "refund-desk", "field": "name"}
    assert "'refunds'" in str(exc) and "'refund-desk'" in str(exc)


def test_entry_point_that_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, ("refund-desk", "refund_agent_support:GONE"))
    with pytest.raises(AgentDefinitionError) as caught:
        discover_agents()
    exc = caught.value
    assert exc.context == {"agent": "refund-desk", "field": "reference"}
    assert "refund_agent_support:GONE" in str(exc)


# -- AgentRegistry --------------------------------------------------------------------------


def test_registry_holds_agents_in_order() -> None:
    agents = AgentRegistry([REFUND_AGENT, LOAN_AGENT, REFUND_AGENT])
    assert agents.names == ("refund-desk", "loan-underwriter")
    assert len(agents) == 2 and "refund-desk" in agents and "claims" not in agents
    assert agents.get("loan-underwriter") is LOAN_AGENT
    assert [spec.name for spec in agents.contracts()] == [
        "refund-desk.input",
        "refund-desk.decision",
        "loan_application",
        "loan_decision",
    ]
    with pytest.raises(AgentDefinitionError) as caught:
        agents.get("claims")
    assert caught.value.context == {"agent": "claims", "field": "name"}
    assert "refund-desk, loan-underwriter" in str(caught.value)


def test_two_agents_on_one_topic() -> None:
    twin = refund_definition(name="refund-twin")
    assert twin.topics.input == REFUND_AGENT.topics.input
    with pytest.raises(AgentDefinitionError) as caught:
        AgentRegistry([REFUND_AGENT, twin])
    exc = caught.value
    assert exc.context == {"agent": "refund-twin", "field": "topics.input"}
    for name in ("refund-desk", "refund-twin", "refund.requests"):
        assert name in str(exc)


def test_two_agents_with_one_name() -> None:
    other = refund_definition(
        topics=AgentTopics(input="refund.requests.eu", decisions="refund.decisions.eu")
    )
    with pytest.raises(AgentDefinitionError) as caught:
        AgentRegistry([REFUND_AGENT, other])
    assert caught.value.context == {"agent": "refund-desk", "field": "name"}
    assert "two agents are named refund-desk" in str(caught.value)


# -- resolve_agents / known_agents ----------------------------------------------------------


def test_resolve_by_name_and_by_reference() -> None:
    settings = Settings(agents=("loan-underwriter", REFUND_REF))
    assert resolve_agents(settings=settings).names == ("loan-underwriter", "refund-desk")
    # Explicit references win over the settings.
    assert resolve_agents([REFUND_REF], settings).names == ("refund-desk",)
    assert resolve_agents(settings=Settings()).names == ("loan-underwriter",)


def test_resolve_with_nothing_named_takes_every_installed_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, ("loan-underwriter", "flightrec.agents.loan_agent:LOAN_AGENT"))
    assert resolve_agents(settings=Settings(agents=())).names == ("loan-underwriter",)
    install(
        monkeypatch,
        ("loan-underwriter", "flightrec.agents.loan_agent:LOAN_AGENT"),
        ("refund-desk", REFUND_REF),
    )
    assert resolve_agents(settings=Settings(agents=())).names == (
        "loan-underwriter",
        "refund-desk",
    )


def test_resolve_refuses_an_unknown_name() -> None:
    with pytest.raises(AgentDefinitionError) as caught:
        resolve_agents(["claims-triage"])
    assert caught.value.context == {"agent": "claims-triage", "field": "name"}
    assert "installed: loan-underwriter" in str(caught.value)


def test_known_agents_adds_references_to_the_installed() -> None:
    assert known_agents(Settings(agents=())).names == ("loan-underwriter",)
    assert known_agents(Settings(agents=("loan-underwriter", REFUND_REF))).names == (
        "loan-underwriter",
        "refund-desk",
    )
    # Names are what is installed already: one that is not is no agent to list.
    assert known_agents(Settings(agents=("claims-triage",))).names == ("loan-underwriter",)


def test_build_model_gives_the_offline_model_under_the_profile() -> None:
    model = build_model(REFUND_AGENT, Settings(model_profile="strict"))
    assert isinstance(model, OfflineRefundModel) and model.info.profile == "strict"


# -- flightrec agents list ----------------------------------------------------------------


def agents_list(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], agents: str | None
) -> list[dict[str, object]]:
    if agents is None:
        monkeypatch.delenv("FLIGHTREC_AGENTS", raising=False)
    else:
        monkeypatch.setenv("FLIGHTREC_AGENTS", agents)
    monkeypatch.delenv("FLIGHTREC_TOPIC_PREFIX", raising=False)
    assert main(["agents", "list", "--json"]) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


def test_agents_list_shows_the_loan_agent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = agents_list(monkeypatch, capsys, None)
    assert [row["name"] for row in rows] == ["loan-underwriter"]
    loan = rows[0]
    assert loan["version"] == "1.0.0" and loan["key_field"] == "application_id"
    assert loan["topics"] == {
        "input": "loan.applications",
        "decisions": "loan.decisions",
        "dlq": "loan.applications.dlq",
    }
    assert loan["outcomes"] == ["APPROVE", "DECLINE", "REFER"]
    assert loan["fallback_outcome"] == "REFER"
    assert loan["tools"] == [
        "policy_lookup",
        "credit_bureau_report",
        "verify_income",
        "affordability",
    ]
    assert loan["prompt_versions"] == ["v1", "v2"]
    assert loan["default"] is True


def test_agents_list_adds_an_agent_named_by_reference(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = agents_list(monkeypatch, capsys, REFUND_REF)
    by_name = {row["name"]: row for row in rows}
    assert list(by_name) == ["loan-underwriter", "refund-desk"]
    refund = by_name["refund-desk"]
    assert refund["topics"] == {
        "input": "refund.requests",
        "decisions": "refund.decisions",
        "dlq": "refund.requests.dlq",
    }
    assert refund["outcomes"] == ["REFUND", "REJECT"] and refund["tools"] == ["order_lookup"]
    # FLIGHTREC_AGENTS names what the worker hosts: the refund agent only.
    assert refund["default"] is True
    assert by_name["loan-underwriter"]["default"] is False


def test_agents_list_reports_a_bad_reference(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLIGHTREC_AGENTS", "refund_agent_support:NO_SUCH_AGENT")
    assert main(["agents", "list"]) == 3
    assert "has no attribute NO_SUCH_AGENT" in capsys.readouterr().err
