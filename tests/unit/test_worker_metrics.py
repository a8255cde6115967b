"""The worker's runtime gauges and status line, read from a dispatcher snapshot."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from flightrec.agents.dispatch import DispatchStats
from flightrec.agents.worker_metrics import WorkerMetrics, status_line
from flightrec.contracts.settings import Settings
from flightrec.recorder.otel import setup_metrics

TP = namedtuple("TP", "topic partition")
A, B = TP("loan.applications", 0), TP("loan.applications", 1)
STATS = DispatchStats(
    in_flight=7,
    queued={A: 3, B: 0},
    unsettled={A: 5, B: 1},
    committable={A: 40, B: 12},
    oldest_unsettled_age_s={A: 2.5},
    paused=frozenset({A}),
    failed=False,
)
LAG = {A: 60, B: 4}


def _points(reader: InMemoryMetricReader) -> dict[str, dict[Any, float]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, dict[Any, float]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = {
                    (point.attributes or {}).get("partition"): point.value
                    for point in metric.data.data_points
                }
    return found


def test_the_gauges_report_the_snapshot_per_partition() -> None:
    reader = InMemoryMetricReader()
    provider = setup_metrics(Settings(), reader)
    WorkerMetrics(provider.get_meter("test"), lambda: STATS, lambda: LAG)
    points = _points(reader)
    assert points["flightrec.worker.runs_in_flight"] == {None: 7}
    assert points["flightrec.worker.queued"] == {
        "loan.applications/0": 3,
        "loan.applications/1": 0,
    }
    assert points["flightrec.worker.oldest_unsettled_age"] == {"loan.applications/0": 2.5}
    assert points["flightrec.worker.committed_lag"] == {
        "loan.applications/0": 60,
        "loan.applications/1": 4,
    }
    provider.shutdown()


def test_the_status_line_sums_and_names_the_paused_partitions() -> None:
    assert status_line(STATS, LAG) == (
        "in flight 7, queued 3, oldest unsettled 2.5 s, committed lag 64, "
        "paused loan.applications/0"
    )
