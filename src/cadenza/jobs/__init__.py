"""The job layer: durable jobs in SQL (SQLite or PostgreSQL), spawned worker processes, retention, metrics.

``JobService`` is what the API and CLI call; ``WorkerPool`` runs jobs in local worker processes.
"""

from cadenza.jobs.metrics import JobsCollector
from cadenza.jobs.pool import WorkerPool
from cadenza.jobs.service import JobService
from cadenza.jobs.views import (
    FINAL,
    IdempotencyConflict,
    JobError,
    JobEventView,
    JobGone,
    JobNotFound,
    JobNotReady,
    JobStatus,
    JobView,
    KeyView,
    OutputNotFound,
    OutputView,
)

__all__ = [
    "FINAL",
    "IdempotencyConflict",
    "JobError",
    "JobEventView",
    "JobGone",
    "JobNotFound",
    "JobNotReady",
    "JobStatus",
    "JobView",
    "JobsCollector",
    "JobService",
    "KeyView",
    "OutputNotFound",
    "OutputView",
    "WorkerPool",
]
