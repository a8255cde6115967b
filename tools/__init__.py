"""Tools: what an agent may call, and how a call is made safe.

- :class:`ToolSpec` and the :func:`tool` decorator: an async function with a
  pydantic argument model and a pydantic result model.
- :class:`Toolset`: the live :class:`ToolExecutor` (allow-list, argument
  validation, PII tokens swapped for real values, per-tool timeout; every
  error is a :class:`ToolOutcome`, never an exception).
- :class:`HttpClient`: the one HTTP session of a toolset, with a host
  allow-list and typed errors.
- The reference loan tools: :func:`build_loan_toolset` (the four tools the
  loan agent may call, :data:`LOAN_TOOL_NAMES`), :func:`loan_tool_specs`, and
  the lending policies they serve (:func:`get_policy`, :class:`PolicyProfile`).

The credit-bureau simulator those tools call in development lives in
:mod:`flightrec.testing`.
"""

from flightrec.tools.base import ToolExecutor, ToolOutcome
from flightrec.tools.http import HttpClient
from flightrec.tools.loan_policy import PolicyProfile, get_policy
from flightrec.tools.loan_tools import LOAN_TOOL_NAMES, build_loan_toolset, loan_tool_specs
from flightrec.tools.spec import ToolSpec, tool
from flightrec.tools.toolset import Toolset

__all__ = [
    "LOAN_TOOL_NAMES",
    "HttpClient",
    "PolicyProfile",
    "ToolExecutor",
    "ToolOutcome",
    "ToolSpec",
    "Toolset",
    "build_loan_toolset",
    "get_policy",
    "loan_tool_specs",
    "tool",
]
