"""flightrec finds the claims agent by its entry point once the package is installed."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from flightrec_claims.agent import CLAIMS_AGENT


def test_claims_agent_loads_through_its_entry_point() -> None:
    found = [ep for ep in entry_points(group="flightrec.agents") if ep.name == "claims-triage"]
    if not found:
        pytest.skip("flightrec-claims is not installed (pip install -e examples/claims)")
    assert found[0].value == "flightrec_claims.agent:CLAIMS_AGENT"
    assert found[0].load() is CLAIMS_AGENT
