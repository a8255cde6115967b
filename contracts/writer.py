"""``RecordWriter``: what a writer of broker-confirmed records offers.

The ``DLQ`` data-contract rule action (:mod:`flightrec.contracts.dlq_action`)
and the worker pipeline write through it. ``flightrec.kafka.ConfirmedProducer``
implements it on librdkafka and ``flightrec.testing.MemoryProducer`` in memory.
It is defined here, at the bottom of the layers, so that contracts code writes
records without depending on the Kafka layer: whoever builds the codec hands it
a writer (docs/design.md, "Layers").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypedDict, Unpack

from flightrec.contracts.headers import Header

__all__ = ["RecordWriter", "SendOptions"]


class SendOptions(TypedDict, total=False):
    """The optional parts of one record: key, headers, and a fixed partition
    (without one, the key's partition)."""

    key: bytes | str | None
    headers: Sequence[Header] | None
    partition: int | None


class RecordWriter(Protocol):
    """Confirmed writes: ``send_and_wait`` returns once the broker confirmed the
    record and raises :class:`~flightrec.contracts.errors.RecorderError` when it
    did not (nothing about the record is then known to be durable)."""

    async def send_and_wait(
        self, topic: str, value: bytes | None, **options: Unpack[SendOptions]
    ) -> object: ...
