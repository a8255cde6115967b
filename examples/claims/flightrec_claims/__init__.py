"""Insurance claims triage on flightrec: a reference agent outside flightrec itself.

- :data:`CLAIMS_AGENT` (:mod:`flightrec_claims.agent`): the definition
  flightrec loads through the ``flightrec.agents`` entry point;
- :class:`Claim` and :class:`ClaimDecision` (:mod:`flightrec_claims.models`):
  the input event and the decision document;
- :func:`build_claims_toolset` (:mod:`flightrec_claims.tools`): the three tools;
- :class:`ClaimsRulesModel` (:mod:`flightrec_claims.model`): the offline model;
- :func:`synthetic_claims` (:mod:`flightrec_claims.samples`): demo input.

The policy simulator the tools call in development is
:mod:`flightrec_claims.simulator` (``python -m flightrec_claims.simulator --port N``).
"""

from flightrec_claims.agent import CLAIMS_AGENT
from flightrec_claims.model import ClaimsRulesModel
from flightrec_claims.models import Claim, ClaimDecision
from flightrec_claims.samples import synthetic_claims
from flightrec_claims.tools import build_claims_toolset

__all__ = [
    "CLAIMS_AGENT",
    "Claim",
    "ClaimDecision",
    "ClaimsRulesModel",
    "build_claims_toolset",
    "synthetic_claims",
]
