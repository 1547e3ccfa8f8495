"""Prometheus metrics of the job system, computed from the database at scrape time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, select

from cadenza.db.models import Job, epoch_s
from cadenza.db.session import read_tx
from cadenza.jobs.views import FINAL, JobStatus

if TYPE_CHECKING:
    from cadenza.jobs.service import JobService

TimestampColumn = Literal["created_at", "started_at", "completed_at"]

RUN_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
QUEUE_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def counts_by_kind_status(engine: Engine) -> dict[tuple[str, str], int]:
    """``{(kind, status): count}`` over all stored jobs."""
    with read_tx(engine) as session:
        rows = session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)).all()
    return {(k, s): n for k, s, n in rows}


def duration_histogram(
    engine: Engine, start: TimestampColumn, end: TimestampColumn, buckets_s: tuple[float, ...]
) -> dict[str, tuple[list[int], float, int]]:
    """Histogram of ``end - start`` seconds (two timestamp columns of ``jobs``) over finished jobs
    that have both, aggregated in SQL (one grouped query, no rows fetched):
    ``{kind: (cumulative count ≤ each bucket, sum_s, count)}``."""
    begin, finish = getattr(Job, start), getattr(Job, end)
    seconds = epoch_s(finish) - epoch_s(begin)
    query = (
        select(
            Job.kind,
            func.count(),
            func.sum(case((seconds > 0, seconds), else_=0.0)),
            *(func.sum(case((seconds <= bound, 1), else_=0)) for bound in buckets_s),
        )
        .where(Job.status.in_([s.value for s in FINAL]), begin.is_not(None), finish.is_not(None))
        .group_by(Job.kind)
    )
    with read_tx(engine) as session:
        rows = session.execute(query).all()
    return {row[0]: ([int(n) for n in row[3:]], float(row[2] or 0.0), int(row[1])) for row in rows}


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

    Register with ``prometheus_client.REGISTRY.register(JobsCollector(service, executor_or_None))``.
    """

    def __init__(self, service: JobService, pool: Any = None) -> None:
        self.service, self.pool = service, pool
        self.started = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        counts = counts_by_kind_status(self.service.engine)
        jobs = GaugeMetricFamily("cadenza_jobs", "Stored jobs by kind and status.", labels=["kind", "status"])
        for kind in sorted({k for k, _ in counts}):
            for status in JobStatus:
                jobs.add_metric([kind, status.value], counts.get((kind, status.value), 0))
        yield jobs
        depth = sum(n for (_, s), n in counts.items() if s == JobStatus.queued.value)
        yield GaugeMetricFamily("cadenza_queue_depth", "Queued jobs.", value=depth)

        runs = duration_histogram(self.service.engine, "started_at", "completed_at", RUN_BUCKETS_S)
        waits = duration_histogram(self.service.engine, "created_at", "started_at", QUEUE_BUCKETS_S)
        yield _histogram("cadenza_job_run_seconds", "Run time of finished stored jobs.", RUN_BUCKETS_S, runs)
        yield _histogram("cadenza_job_queue_seconds", "Queue wait of started stored jobs.", QUEUE_BUCKETS_S, waits)

        if self.pool is not None:
            status = self.pool.status()
            yield CounterMetricFamily(
                "cadenza_worker_restarts", "Worker processes replaced after a crash or kill.", value=status["restarts"]
            )
            if hasattr(self.pool, "queue_depths"):  # a distributed executor
                yield from _queue_metrics(self.pool, status)
            workers = GaugeMetricFamily("cadenza_workers", "Worker processes.", labels=["state"])
            workers.add_metric(["configured"], status["workers"])
            workers.add_metric(["alive"], status["alive"])
            workers.add_metric(["busy"], status["busy"])
            yield workers
        yield GaugeMetricFamily(
            "cadenza_uptime_seconds", "Seconds since the service started.", value=time.monotonic() - self.started
        )


def _queue_metrics(executor: Any, status: dict[str, Any]) -> Iterator[Metric]:
    """Per-queue figures of a distributed executor: broker messages, queued jobs, live workers serving it."""
    try:
        depths = executor.queue_depths()
    except Exception:  # the broker is away: /ready says so
        depths = {}
    broker = GaugeMetricFamily("cadenza_broker_queue_depth", "Messages waiting in the broker.", labels=["queue"])
    for queue, depth in sorted(depths.items()):
        broker.add_metric([queue], depth)
    yield broker
    queued = GaugeMetricFamily("cadenza_queue_jobs", "Queued jobs per queue (database).", labels=["queue"])
    for queue, count in sorted(executor.queued_by_queue().items()):
        queued.add_metric([queue], count)
    yield queued
    serving = GaugeMetricFamily("cadenza_queue_workers", "Live workers serving each queue.", labels=["queue"])
    for queue, count in sorted(status.get("queues", {}).items()):
        serving.add_metric([queue], count)
    yield serving
