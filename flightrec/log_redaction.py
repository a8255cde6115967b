"""URL credentials never reach a log line, at any verbosity.

Settings mask themselves when shown (``Settings.__repr_args__``), and
flightrec's own errors pass URLs through ``redact_url``; but libraries log
URLs too (an HTTP client's request line at DEBUG, a connection error), some
with an API key or token in the query string. :func:`redact_log_records`
wraps the log-record factory so every record's message has URL credentials
masked before any handler sees it, whoever configures the handlers later
(Faust's worker replaces them).
"""

from __future__ import annotations

import logging
from typing import Any

from flightrec.contracts.settings import redact_url

__all__ = ["redact_log_records"]

_MARK = "_flightrec_redacts"


def redact_log_records() -> None:
    """Mask URL credentials in every log record's message from now on (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, _MARK, False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format is logging's to report, when it emits
            return record
        redacted = redact_url(message)
        if redacted != message:
            # Formatted once here (records are only made for enabled levels).
            record.msg, record.args = redacted, None
        return record

    setattr(factory, _MARK, True)
    logging.setLogRecordFactory(factory)
