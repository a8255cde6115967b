"""Which traces a command means: ids, a business key, everything, or a time range.

Times are ISO 8601 (``2025-03-14T09:00:00Z``; a date alone is midnight UTC) or
a duration back from now (``30m``, ``2h``, ``7d``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Selection", "parse_time"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An aware UTC datetime from ISO 8601 text or a duration ago (``ValueError`` otherwise)."""
    text = text.strip()
    match = _DURATION.match(text)
    if match is not None:
        amount, unit = float(match.group(1)), _UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Selection:
    """The traces a command applies to (exactly one way of choosing them).

    ``business_key`` chooses every trace recorded for one subject (``--key``);
    ``application_id`` is the same choice under the loan agent's name
    (``--application``), kept so its errors speak of the application. ``agent``
    narrows a key, ``--all`` or a time range to one agent's runs.
    """

    trace_ids: tuple[str, ...] = ()
    business_key: str | None = None
    application_id: str | None = None
    all: bool = False
    since: datetime | None = None
    until: datetime | None = None
    agent: str | None = None
    agent_version: str | None = None

    def validate(self) -> None:
        """``ValueError`` when the selection is empty or mixes ways of choosing."""
        ways = sum(
            [
                bool(self.trace_ids),
                self.business_key is not None,
                self.application_id is not None,
                self.all,
                self.since is not None or self.until is not None,
            ]
        )
        if ways == 0:
            raise ValueError(
                "choose traces: TRACE_ID..., --key (--application), --all or --since/--until"
            )
        if ways > 1 and not (self.all and (self.since or self.until)):
            raise ValueError(
                "choose traces one way: ids, --key (--application), --all or a time range"
            )
        for trace_id in self.trace_ids:
            if not re.fullmatch(r"[0-9a-f]{32}", trace_id):
                raise ValueError(f"not a trace id (32 lowercase hex digits): {trace_id!r}")
