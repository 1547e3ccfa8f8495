"""Prometheus metrics of the job system, computed from the database at scrape time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from cadenza.jobs.views import JobStatus

if TYPE_CHECKING:
    from cadenza.jobs.pool import WorkerPool
    from cadenza.jobs.service import JobService

RUN_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
QUEUE_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def _histogram(
    name: str, doc: str, buckets: tuple[float, ...], rows: dict[str, tuple[list[int], float, int]]
) -> Metric:
    metric = HistogramMetricFamily(name, doc, labels=["kind"])
    for kind, (cumulative, sum_s, count) in sorted(rows.items()):
        values = [(str(b), n) for b, n in zip(buckets, cumulative, strict=True)]
        values.append(("+Inf", count))
        metric.add_metric([kind], values, sum_s)
    return metric


class JobsCollector(Collector):
    """``cadenza_jobs{kind,status}`` (stored jobs), ``cadenza_queue_depth``, ``cadenza_job_run_seconds``
    and ``cadenza_job_queue_seconds`` histograms over finished stored jobs,
    ``cadenza_worker_restarts_total`` and ``cadenza_workers{state}`` (with a pool), ``cadenza_uptime_seconds``.

    Register with ``prometheus_client.REGISTRY.register(JobsCollector(service, pool_or_None))``.
    """

    def __init__(self, service: JobService, pool: WorkerPool | None = None) -> None:
        self.service, self.pool = service, pool
        self.started = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        counts = self.service.counts_by_kind_status()
        jobs = GaugeMetricFamily("cadenza_jobs", "Stored jobs by kind and status.", labels=["kind", "status"])
        for kind in sorted({k for k, _ in counts}):
            for status in JobStatus:
                jobs.add_metric([kind, status.value], counts.get((kind, status.value), 0))
        yield jobs
        depth = sum(n for (_, s), n in counts.items() if s == JobStatus.queued.value)
        yield GaugeMetricFamily("cadenza_queue_depth", "Queued jobs.", value=depth)

        runs = self.service.duration_histogram("started_at", "completed_at", RUN_BUCKETS_S)
        waits = self.service.duration_histogram("created_at", "started_at", QUEUE_BUCKETS_S)
        yield _histogram("cadenza_job_run_seconds", "Run time of finished stored jobs.", RUN_BUCKETS_S, runs)
        yield _histogram("cadenza_job_queue_seconds", "Queue wait of started stored jobs.", QUEUE_BUCKETS_S, waits)

        if self.pool is not None:
            status = self.pool.status()
            yield CounterMetricFamily(
                "cadenza_worker_restarts", "Worker processes replaced after a crash or kill.", value=status["restarts"]
            )
            workers = GaugeMetricFamily("cadenza_workers", "Local worker processes.", labels=["state"])
            workers.add_metric(["configured"], status["workers"])
            workers.add_metric(["alive"], status["alive"])
            workers.add_metric(["busy"], status["busy"])
            yield workers
        yield GaugeMetricFamily(
            "cadenza_uptime_seconds", "Seconds since the service started.", value=time.monotonic() - self.started
        )
