"""The job layer: durable jobs in SQL (SQLite or PostgreSQL), spawned worker processes, retention, metrics.

``JobService`` is what the API and CLI call; an ``Executor`` (``create_executor``; today the local
``WorkerPool`` of spawned processes) runs the jobs; ``Maintenance`` sweeps leases and applies retention.
"""

from cadenza.jobs.executor import Executor, create_executor
from cadenza.jobs.maintenance import Maintenance
from cadenza.jobs.metrics import JobsCollector
from cadenza.jobs.pool import WorkerPool
from cadenza.jobs.service import JobService, StagedInput
from cadenza.jobs.views import (
    FINAL,
    IdempotencyConflict,
    JobError,
    JobEventView,
    JobGone,
    JobNotFound,
    JobNotReady,
    JobNotRetryable,
    JobStatus,
    JobView,
    KeyView,
    OutputNotFound,
    OutputView,
    UploadNotFound,
    UploadView,
)

__all__ = [
    "FINAL",
    "Executor",
    "Maintenance",
    "StagedInput",
    "UploadNotFound",
    "UploadView",
    "create_executor",
    "IdempotencyConflict",
    "JobError",
    "JobEventView",
    "JobGone",
    "JobNotFound",
    "JobNotReady",
    "JobNotRetryable",
    "JobStatus",
    "JobView",
    "JobsCollector",
    "JobService",
    "KeyView",
    "OutputNotFound",
    "OutputView",
    "WorkerPool",
]
