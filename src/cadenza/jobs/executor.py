"""The executor interface: who runs the jobs that :class:`JobService` stores.

The API and the CLI hold an ``Executor`` and never a concrete class; :func:`create_executor` picks one
by the ``executor`` setting: ``local`` (:class:`cadenza.jobs.pool.WorkerPool`: spawned worker processes on
this host plus a supervisor) or ``celery`` (:class:`cadenza.jobs.celery_executor.CeleryExecutor`: Celery
workers on any host, over Redis). Whatever runs a job, its state, progress, events and
outputs live in the database, so the job API, SSE, metrics and retention work the same.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from cadenza.jobs.service import JobService
from cadenza.settings import Settings


class Executor(Protocol):
    def start(self) -> None:
        """Start running jobs (and the executor's maintenance: lease sweeps, retention)."""

    def dispatch(self, job_id: uuid.UUID) -> None:
        """A job was stored: run it when capacity allows (called by ``JobService.submit``)."""

    def drain(self, timeout_s: float) -> None:
        """Claim nothing new; let running jobs finish for up to ``timeout_s``; then stop (unfinished jobs
        go back to the queue)."""

    def stop(self) -> None:
        """Stop at once; running jobs go back to the queue."""

    def status(self) -> dict[str, int]:
        """``{"workers": configured, "alive": n, "busy": n, "restarts": n}``."""

    def request_model(self, name: str, action: str, wait_s: float = 30.0) -> int:
        """Ask the workers to ``"load"``/``"unload"`` model ``name``; returns how many were asked.
        Raises ValueError (bad action), KeyError (unknown model)."""

    def loaded_models(self) -> set[str]:
        """Models loaded in at least one live worker."""


def create_executor(settings: Settings, service: JobService) -> Executor:
    """The executor of ``settings.executor`` (``local``: ``settings.workers`` spawned processes; ``celery``:
    :class:`cadenza.jobs.celery_executor.CeleryExecutor`, which sends jobs to ``cadenza worker`` processes)."""
    if settings.executor == "local":
        from cadenza.jobs.pool import WorkerPool

        return WorkerPool(settings, service)
    if settings.executor == "celery":
        from cadenza.jobs.celery_executor import CeleryExecutor

        return CeleryExecutor(settings, service)
    raise ValueError(f"unknown executor {settings.executor!r}")
