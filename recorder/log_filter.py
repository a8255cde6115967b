"""A ``logging.Filter`` that replaces personal data in log records by its tokens.

It scrubs the values the :class:`~flightrec.recorder.pii.PiiGuard` tokenised recently:
the formatted message, and the traceback text when there is one. Records are
never dropped.

Where to attach it matters: Python applies a *logger's* filters only to
records logged on that very logger, not to records propagated from child
loggers, while a *handler's* filters see every record the handler emits. So
:meth:`PiiLogFilter.attach` adds the filter to every handler of the given
logger (the root logger by default) as well as to the logger itself.
"""

from __future__ import annotations

import logging

from flightrec.recorder.pii import PiiGuard

__all__ = ["PiiLogFilter"]

_FORMATTER = logging.Formatter()


class PiiLogFilter(logging.Filter):
    """Scrubs registered PII values from every record it sees."""

    def __init__(self, guard: PiiGuard) -> None:
        super().__init__()
        self._guard = guard
        self._attached: list[logging.Handler | logging.Logger] = []

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place when it holds a known value; always keep it."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return True
        scrubbed = self._guard.scrub_known(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            # Format the traceback now, so handlers print the scrubbed text.
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._guard.scrub_known(record.exc_text)
        if record.stack_info:
            record.stack_info = self._guard.scrub_known(record.stack_info)
        return True

    def attach(self, logger: logging.Logger | None = None) -> PiiLogFilter:
        """Add the filter to ``logger`` (root by default) and all its handlers."""
        target = logger if logger is not None else logging.getLogger()
        items: list[logging.Handler | logging.Logger] = [target, *target.handlers]
        for item in items:
            if self not in item.filters:
                item.addFilter(self)
                self._attached.append(item)
        return self

    def detach(self) -> None:
        """Remove the filter from everything :meth:`attach` added it to."""
        for item in self._attached:
            item.removeFilter(self)
        self._attached.clear()
