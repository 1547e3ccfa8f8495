"""Where a job stands: its place in the queue and an estimate of when it finishes.

``queue_position`` (1 = next to start) follows the claim order of :func:`cadenza.jobs.store.claim_next`:
highest ``priority`` first, then oldest. ``eta_s`` is built from the median run time of the last
:data:`RECENT_RUNS` completed jobs of each kind (None while a kind has no such history):

- processing: the remaining share of the job's own pace once it has reported at least
  :data:`MIN_PROGRESS_PCT` percent (``elapsed × (100 − p) / p``), else the median minus the time elapsed;
- queued: the medians of every job ahead of it plus its own, shared among ``workers`` processes.
"""

from __future__ import annotations

import statistics
from datetime import datetime

from sqlalchemy import and_, func, or_, select
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

    def _ahead(self, job: Job) -> dict[str, int]:
        """Queued jobs claimed before ``job``, counted by kind."""
        ahead = or_(
            Job.priority > job.priority,
            and_(
                Job.priority == job.priority,
                or_(Job.created_at < job.created_at, and_(Job.created_at == job.created_at, Job.id < job.id)),
            ),
        )
        rows = self.session.execute(
            select(Job.kind, func.count()).where(Job.status == JobStatus.queued.value, ahead).group_by(Job.kind)
        ).all()
        return {kind: int(count) for kind, count in rows}

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
