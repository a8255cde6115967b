"""``ReplayService``: the replay parts wired together for commands and benchmarks.

Opens the codec (registered schemas), the CoT reader, the trace index and, when
results are published, a confirmed producer for the replays topic; closes them
all on exit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flightrec.contracts.chain import verify_signed_chain
from flightrec.contracts.codec import Codec
from flightrec.contracts.events import ReplayResult
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing import Keyring
from flightrec.contracts.signing_keys import keyring_for
from flightrec.kafka.producer import ConfirmedProducer
from flightrec.replay.batch import ReplaySink, read_replay_results, run_bounded
from flightrec.replay.catalog import RegistryCatalog
from flightrec.replay.history import RunHistory
from flightrec.replay.index import TraceIndex
from flightrec.replay.reader import CotReader
from flightrec.replay.replayer import Candidate, ReevaluateOutcome, Replayer, VerifyOutcome
from flightrec.replay.selectors import Selection

__all__ = ["ReplayService"]

Progress = Callable[[int, int], None]


class ReplayService:
    """``async with ReplayService(settings) as service`` — select, verify, re-evaluate, publish."""

    def __init__(
        self,
        settings: Settings,
        *,
        codec: Codec | None = None,
        publish: bool = True,
        keyring: Keyring | None = None,
    ) -> None:
        self.settings = settings
        self._own_codec = codec is None
        self.codec = codec if codec is not None else Codec(settings)
        # Records are checked against the keys this installation trusts
        # (``keyring_for``): an unsigned or foreign-signed attempt is not intact.
        self.keyring = keyring if keyring is not None else keyring_for(settings)
        self.reader = CotReader(
            settings, self.codec, chain_verifier=verify_signed_chain(self.keyring)
        )
        self.index = TraceIndex(settings, self.reader, self.codec)
        self._catalog: RegistryCatalog | None = None
        self._publish = publish
        self._producer: ConfirmedProducer | None = None
        self._sink: ReplaySink | None = None

    async def __aenter__(self) -> ReplayService:
        await self.codec.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close everything opened (producer flushed first)."""
        try:
            if self._producer is not None:
                await self._producer.close()
            if self._catalog is not None:
                await self._catalog.close()
        finally:
            await self.reader.close()
            self.index.close()
            if self._own_codec:
                await self.codec.close()

    @property
    def catalog(self) -> RegistryCatalog:
        """The catalog of installed agents, built on first use."""
        if self._catalog is None:
            self._catalog = RegistryCatalog(self.settings)
        return self._catalog

    async def _sink_for(self) -> ReplaySink | None:
        if not self._publish:
            return None
        if self._sink is None:
            self._producer = ConfirmedProducer(self.settings.producer_config())
            await self._producer.start()
            self._sink = ReplaySink(self.settings, self.codec, self._producer)
        return self._sink

    # ------------------------------------------------------------- selection

    async def select(self, selection: Selection) -> list[RunHistory]:
        """Histories of the selected traces (``TraceNotFoundError`` for an unknown id)."""
        selection.validate()
        if selection.trace_ids:
            return await self.index.lookup_many(selection.trace_ids)
        if selection.business_key is not None:
            return await self.index.lookup_key(selection.business_key, agent=selection.agent)
        if selection.application_id is not None:
            return await self.index.lookup_application(
                selection.application_id, agent=selection.agent
            )
        return await self.reader.read_histories(
            since=selection.since,
            until=selection.until,
            agent=selection.agent,
            agent_version=selection.agent_version,
        )

    async def lookup(self, trace_id: str) -> RunHistory:
        """One trace by id."""
        return await self.index.lookup(trace_id)

    async def replay_results(self, trace_ids: frozenset[str]) -> list[ReplayResult]:
        """Replay results recorded for these traces."""
        return await read_replay_results(self.settings, self.codec, trace_ids)

    # ---------------------------------------------------------------- batches

    async def verify(
        self, histories: list[RunHistory], *, on_done: Progress | None = None
    ) -> list[VerifyOutcome]:
        """Verify each history (bounded concurrency), publishing a result per trace."""
        replayer = Replayer(self.catalog)
        sink = await self._sink_for()

        async def one(history: RunHistory) -> VerifyOutcome:
            outcome = await replayer.verify(history)
            if sink is not None:
                result = outcome.to_result(
                    history.run_started, history.first_event, datetime.now(UTC)
                )
                await sink.publish(result)
            return outcome

        return await run_bounded(
            histories, one, concurrency=self.settings.worker_concurrency, on_done=on_done
        )

    async def reevaluate(
        self,
        histories: list[RunHistory],
        candidate: Candidate,
        *,
        on_done: Progress | None = None,
    ) -> list[ReevaluateOutcome]:
        """Re-evaluate each history under ``candidate``, publishing a result per trace."""
        if candidate.live_tools:
            await self.catalog.start_live_tools()
        replayer = Replayer(self.catalog)
        sink = await self._sink_for()

        async def one(history: RunHistory) -> ReevaluateOutcome:
            outcome = await replayer.reevaluate(history, candidate)
            if sink is not None:
                await sink.publish(outcome.to_result(datetime.now(UTC)))
            return outcome

        return await run_bounded(
            histories, one, concurrency=self.settings.worker_concurrency, on_done=on_done
        )
