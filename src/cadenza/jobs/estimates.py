"""Where a job stands: its place in the queue and an estimate of when it finishes.

``queue_position`` (1 = next to start) follows the claim order of :func:`cadenza.jobs.store.claim_next`:
highest ``priority`` first, then oldest. ``eta_s`` is built from the median run time of the last
:data:`RECENT_RUNS` completed jobs of each kind (None while a kind has no such history):

- processing: the remaining share of the job's own pace once it has reported at least
  :data:`MIN_PROGRESS_PCT` percent (``elapsed × (100 − p) / p``), else the median minus the time elapsed;
- queued: the medians of every job ahead of it plus its own, shared among ``workers`` processes.

The queue is read once per transaction (one query, at most ``max_queued_jobs`` rows), whatever the number
of jobs a list page estimates.
"""

from __future__ import annotations

import statistics
import uuid
from collections import Counter
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenza.db.models import Job, utcnow
from cadenza.jobs.views import JobStatus

RECENT_RUNS = 20
MIN_PROGRESS_PCT = 5.0


class Estimator:
    """Estimates for the jobs of one read transaction (medians are cached per kind)."""

    def __init__(self, session: Session, workers: int) -> None:
        self.session, self.workers = session, max(1, workers)
        self._medians: dict[str, float | None] = {}
        self._order: list[str] | None = None
        self._index: dict[uuid.UUID, int] = {}

    def median_run_s(self, kind: str) -> float | None:
        if kind not in self._medians:
            rows = self.session.execute(
                select(Job.started_at, Job.completed_at)
                .where(Job.kind == kind, Job.status == JobStatus.completed.value, Job.started_at.is_not(None))
                .order_by(Job.completed_at.desc())
                .limit(RECENT_RUNS)
            ).all()
            runs = [(done - started).total_seconds() for started, done in rows if done is not None]
            self._medians[kind] = statistics.median(runs) if runs else None
        return self._medians[kind]

    def _queue(self) -> list[str]:
        """The kinds of every queued job in claim order, read once per transaction (``_index`` maps ids)."""
        if self._order is None:
            rows = self.session.execute(
                select(Job.id, Job.kind)
                .where(Job.status == JobStatus.queued.value)
                .order_by(Job.priority.desc(), Job.created_at, Job.id)
            ).all()
            self._order = [kind for _, kind in rows]
            self._index = {job_id: index for index, (job_id, _) in enumerate(rows)}
        return self._order

    def _ahead(self, job: Job) -> dict[str, int]:
        """Queued jobs claimed before ``job``, counted by kind."""
        order = self._queue()
        return dict(Counter(order[: self._index.get(job.id, len(order))]))

    def of(self, job: Job, now: datetime | None = None) -> tuple[int | None, float | None]:
        """``(queue_position, eta_s)`` of ``job``: both None once it is final."""
        if job.status == JobStatus.queued.value:
            ahead = self._ahead(job)
            medians = [self.median_run_s(kind) for kind in (*ahead, job.kind)]
            if any(m is None for m in medians):
                return sum(ahead.values()) + 1, None
            work_s = sum(count * self.median_run_s(kind) for kind, count in ahead.items()) + medians[-1]
            return sum(ahead.values()) + 1, round(work_s / self.workers, 1)
        if job.status == JobStatus.processing.value and job.started_at is not None:
            elapsed = ((now or utcnow()) - job.started_at).total_seconds()
            if job.progress >= MIN_PROGRESS_PCT:
                return None, round(max(0.0, elapsed * (100.0 - job.progress) / job.progress), 1)
            median = self.median_run_s(job.kind)
            return None, None if median is None else round(max(0.0, median - elapsed), 1)
        return None, None
