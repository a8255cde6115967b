"""``Checkpointer``: the recorder's signed checkpoints of the CoT partitions it wrote.

The recorder tells it about every event the broker confirmed
(:meth:`Checkpointer.confirmed`: one dict update on the delivery path); every
``checkpoint_interval_s``, and once more when the recorder closes, it writes one
:class:`~flightrec.contracts.checkpoint.Checkpoint` of the last confirmed event
of each partition to the checkpoint topic, if any moved since the last one
(docs/design.md, "Checkpoints of the log"). A checkpoint that could not be
written is logged and its heads go into the next one: checkpoints vouch for the
log, they never hold a run up.
"""

from __future__ import annotations

import asyncio
import logging

from flightrec.contracts.checkpoint import Checkpoint, CheckpointHead
from flightrec.contracts.errors import RecorderError
from flightrec.contracts.settings import Settings
from flightrec.contracts.signing import RecordSigner
from flightrec.contracts.writer import RecordWriter

__all__ = ["Checkpointer"]

log = logging.getLogger(__name__)

# One partition's last confirmed event: (offset, trace_id, attempt, seq, chain hash).
# A tuple, not a model: it is replaced on every confirmed event.
_Head = tuple[int, str, int, int, str]


class Checkpointer:
    """Per CoT partition, the last event confirmed; signed checkpoints of them.

    ``writer`` names the writer in each checkpoint (default: the settings'
    ``worker_instance_id``, else ``app_id``).
    """

    def __init__(self, settings: Settings, signer: RecordSigner, writer: str | None = None) -> None:
        self.topic = settings.topics.checkpoints
        self.writer = writer or settings.worker_instance_id or settings.app_id
        self._signer = signer
        self._heads: dict[int, _Head] = {}
        self._changed = False

    def confirmed(
        self, partition: int, offset: int, trace_id: str, attempt: int, seq: int, head: str
    ) -> None:
        """The broker confirmed the event ``(trace_id, attempt, seq)`` with chain
        hash ``head`` at ``offset`` of ``partition``."""
        last = self._heads.get(partition)
        # Reports of one partition come in offset order; never step back if not.
        if last is None or offset > last[0]:
            self._heads[partition] = (offset, trace_id, attempt, seq, head)
            self._changed = True

    @property
    def changed(self) -> bool:
        """Whether a head moved since the last checkpoint taken."""
        return self._changed

    def heads(self) -> dict[int, CheckpointHead]:
        """The last confirmed event of every partition written to so far."""
        return {
            partition: CheckpointHead(
                offset=offset, trace_id=trace_id, attempt=attempt, seq=seq, head=head
            )
            for partition, (offset, trace_id, attempt, seq, head) in sorted(self._heads.items())
        }

    def take(self) -> Checkpoint | None:
        """A signed checkpoint of :meth:`heads` if any moved since the last one taken."""
        if not self._changed:
            return None
        self._changed = False
        return Checkpoint.signed(self.writer, self.heads(), self._signer)

    async def write(self, producer: RecordWriter) -> Checkpoint | None:
        """Take a checkpoint (:meth:`take`) and write it, waiting for the broker.

        Raises :class:`RecorderError` when it was not confirmed; its heads then
        go into the next checkpoint, as they do when this is cancelled.
        """
        checkpoint = self.take()
        if checkpoint is None:
            return None
        try:
            await producer.send_and_wait(self.topic, checkpoint.encode(), key=self.writer)
        except BaseException:
            self._changed = True
            raise
        return checkpoint

    async def run(self, producer: RecordWriter, interval_s: float) -> None:
        """Write a checkpoint every ``interval_s`` when a head moved, until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.write(producer)
            except RecorderError as exc:
                log.error("checkpoint not written: %s", exc)
            except Exception:  # the next checkpoint must still come
                log.exception("checkpoint not written")
