"""The credit-bureau simulator the loan tools call.

Run it with ``python -m flightrec.testing.bureau --port N``, or in-process with
:func:`start_bureau`; :func:`credit_report` and :func:`income_check` are the
deterministic answers it serves.
"""

from flightrec.testing.bureau.simulator import build_app, credit_report, income_check, start_bureau

__all__ = ["build_app", "credit_report", "income_check", "start_bureau"]
