"""``ScrubbingSealer``: scrub, then seal; what a recorder does to each event it writes.

Both recorders (:class:`~flightrec.recorder.kafka_recorder.KafkaRecorder` and
the in-memory one in ``flightrec.testing``) take a run's event through
:meth:`ScrubbingSealer.seal_scrubbed`, so what they write is scrubbed by the
same policy (:class:`~flightrec.recorder.pii.PiiScrubber`) in the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from flightrec.contracts.chain import ChainSealer
from flightrec.contracts.events import CotEventBase
from flightrec.contracts.signing import RecordSigner
from flightrec.recorder.pii import PiiScrubber

__all__ = ["ScrubbingSealer"]

E = TypeVar("E", bound=CotEventBase)


class ScrubbingSealer(ChainSealer):
    """A :class:`ChainSealer` that first replaces the run's real PII values by
    their tokens. ``scrubber`` is the PII policy (the worker's
    :class:`~flightrec.recorder.pii.PiiGuard`, so its caches are shared); by
    default a private :class:`~flightrec.recorder.pii.PiiScrubber`. ``signer``
    signs the signed kinds (:class:`ChainSealer`)."""

    def __init__(
        self, scrubber: PiiScrubber | None = None, signer: RecordSigner | None = None
    ) -> None:
        super().__init__(signer)
        self._scrubber = scrubber if scrubber is not None else PiiScrubber()

    def seal_scrubbed(self, event: E, vault: Mapping[str, str] | None) -> E:
        """``event`` with the run's real PII values replaced by tokens, sealed.

        Sealing serialises the whole event anyway; the scrubber reads that text
        and the event is scrubbed (and sealed again) only when a real value
        may be in it, which keeps scrubbing off the path of most events.
        """
        if not vault:
            return self.seal(event)
        head = self.head(event.trace_id, event.attempt)
        sealed, canonical = self.seal_canonical(event)
        if not self._scrubber.may_hold(canonical, vault):
            return sealed
        self.restore(event.trace_id, event.attempt, head)
        return self.seal(self._scrubber.scrub_event(event, vault))
