"""The worker's runtime metrics: OpenTelemetry gauges and a status line.

What a user running workers needs to see, read from the dispatcher's snapshot
(:class:`~flightrec.agents.dispatch.DispatchStats`) and the consumer's lag:

* ``flightrec.worker.runs_in_flight``: runs being processed now;
* ``flightrec.worker.queued``: records waiting, per partition (``partition``
  attribute ``topic/partition``);
* ``flightrec.worker.oldest_unsettled_age``: seconds the oldest record not yet
  settled has waited, per partition (what holds the commit back);
* ``flightrec.worker.committed_lag``: records between the offset the worker
  may commit and the partition's end, per partition.

No Faust here: the worker hands in callables that read its dispatcher and its
consumer, so the gauges and the line are unit tested.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from flightrec.agents.dispatch import DispatchStats

__all__ = ["WorkerMetrics", "status_line"]

Lag = Mapping[Hashable, int]


def _label(tp: Hashable) -> str:
    topic = getattr(tp, "topic", None)
    partition = getattr(tp, "partition", None)
    return f"{topic}/{partition}" if topic is not None else str(tp)


def status_line(stats: DispatchStats, lag: Lag) -> str:
    """One line: runs in flight, queued, the oldest unsettled record's age,
    committed lag, paused partitions."""
    queued = sum(stats.queued.values())
    oldest = max(stats.oldest_unsettled_age_s.values(), default=0.0)
    total_lag = sum(lag.values())
    paused = ", ".join(sorted(_label(tp) for tp in stats.paused)) or "none"
    return (
        f"in flight {stats.in_flight}, queued {queued}, oldest unsettled {oldest:.1f} s, "
        f"committed lag {total_lag}, paused {paused}"
    )


class WorkerMetrics:
    """Registers the gauges on ``meter``; each collection reads ``stats()`` and
    ``lag()`` once."""

    def __init__(
        self, meter: Meter, stats: Callable[[], DispatchStats], lag: Callable[[], Lag]
    ) -> None:
        self._stats = stats
        self._lag = lag
        meter.create_observable_gauge(
            "flightrec.worker.runs_in_flight",
            callbacks=[self._in_flight],
            unit="{run}",
            description="runs being processed now",
        )
        meter.create_observable_gauge(
            "flightrec.worker.queued",
            callbacks=[self._queued],
            unit="{record}",
            description="records waiting to run, per partition",
        )
        meter.create_observable_gauge(
            "flightrec.worker.oldest_unsettled_age",
            callbacks=[self._oldest],
            unit="s",
            description="age of the oldest record not yet settled, per partition",
        )
        meter.create_observable_gauge(
            "flightrec.worker.committed_lag",
            callbacks=[self._committed_lag],
            unit="{record}",
            description="records between the committable offset and the partition end",
        )

    def _in_flight(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._stats().in_flight)]

    def _queued(self, options: CallbackOptions) -> Iterable[Observation]:
        return _per_partition(self._stats().queued)

    def _oldest(self, options: CallbackOptions) -> Iterable[Observation]:
        return _per_partition(self._stats().oldest_unsettled_age_s)

    def _committed_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        return _per_partition(self._lag())


def _per_partition(values: Mapping[Hashable, float]) -> list[Observation]:
    """One observation per partition, labelled ``topic/partition``."""
    return [Observation(value, {"partition": _label(tp)}) for tp, value in values.items()]
