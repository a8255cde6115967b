"""The credit-bureau simulator the loan tools call (``python -m flightrec.testing.bureau``)."""

from flightrec.testing.bureau.simulator import (
    DEFAULT_SLOW_S,
    build_app,
    credit_report,
    income_check,
    main,
    serve,
    start_bureau,
)

__all__ = [
    "DEFAULT_SLOW_S",
    "build_app",
    "credit_report",
    "income_check",
    "main",
    "serve",
    "start_bureau",
]
