"""Recorded text made safe for a terminal.

What the flight recorder holds came from outside: an applicant's name, a
tool's response, a model's reasoning. Printed raw, an escape sequence in it
could recolour, hide or rewrite lines of a report (``ESC[2K``, a carriage
return) or reorder what is shown (Unicode bidirectional overrides). The
commands that render recorded text (``trace``, ``traces``, ``audit``) pass it
through :func:`printable` first.
"""

from __future__ import annotations

import re

__all__ = ["printable", "printable_lines"]

# C0 controls but tab and newline, DEL, C1 controls (CSI 0x9b among them), and
# the bidirectional embedding, override and isolate characters.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    # \uXXXX reads the same in text and stays a valid escape inside JSON strings.
    return f"\\u{ord(match.group(0)):04x}"


def printable(text: str) -> str:
    """``text`` with every terminal control character shown as ``\\uXXXX``:
    C0 controls (tab and newline kept), DEL, C1 controls and bidirectional
    overrides. Text without them is returned unchanged."""
    return _UNSAFE.sub(_escape, text)


def printable_lines(lines: list[str]) -> str:
    """``lines`` joined by newlines, each made :func:`printable` with its own
    newlines escaped too: a recorded value cannot start a line of its own."""
    return "\n".join(printable(line).replace("\n", "\\u000a") for line in lines)
