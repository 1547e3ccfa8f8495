"""Cadenza's Celery application: the distributed executor's broker side and its worker task.

A Celery message carries only a job id. The task claims that job in the database with the same conditional
update the local workers use (:func:`cadenza.jobs.store.claim`), so a redelivered or duplicated message never
runs a job twice, then runs it with the local worker's code (:func:`cadenza.jobs.worker.run_job`: progress,
cancel checks, outputs and events in the database; a heartbeat renews the lease). Nothing else lives in the
broker: when Redis loses its data, the API's sweeper sends the queued jobs again.

Worker settings suit long GPU jobs (Celery's "optimizing" guide): one message prefetched per process
(``worker_prefetch_multiplier = 1``), late acknowledgement, and a message whose process died is rejected and
redelivered (``task_reject_on_worker_lost``). Each engine kind has a queue (``queues`` setting; default: its
kind), so a worker serves the engines its hardware suits.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from celery import Celery
from celery.signals import worker_process_init
from sqlalchemy import Engine

from cadenza.db.session import make_engine
from cadenza.jobs import store
from cadenza.settings import Settings

log = structlog.get_logger(__name__)

TASK_NAME = "cadenza.run_job"


def queue_for(settings: Settings, kind: str) -> str:
    """The Celery queue of an engine kind: ``settings.queues[kind]``, else the kind itself."""
    return settings.queues.get(kind, kind)


def all_queues(settings: Settings, kinds: list[str]) -> list[str]:
    """Every queue of the engines ``kinds``, in order, without repeats."""
    return list(dict.fromkeys(queue_for(settings, kind) for kind in kinds))


@dataclass
class _WorkerState:
    """What one worker process holds: its settings, a database engine made after the fork, its model cache."""

    settings: Settings
    engine: Engine | None = None
    cache: dict[str, Any] = field(default_factory=dict)


_STATE: _WorkerState | None = None


def make_app(settings: Settings) -> Celery:
    """The Celery app of ``settings`` (``broker_url``); the API uses it to send, ``cadenza worker`` to serve."""
    app = Celery("cadenza", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        # a message not acknowledged within this long is redelivered (Redis): longer than any job may run
        broker_transport_options={"visibility_timeout": int(max(3600.0, 2 * settings.job_timeout_s))},
        task_soft_time_limit=settings.job_timeout_s,
        task_time_limit=settings.job_timeout_s + 30.0,
    )
    app.task(name=TASK_NAME, ignore_result=True)(run_job_task)
    return app


def init_worker(settings: Settings) -> None:
    """Called by ``cadenza worker`` before Celery forks its processes: they inherit these settings."""
    global _STATE
    _STATE = _WorkerState(settings)


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    if _STATE is not None:
        _STATE.engine = make_engine(_STATE.settings.database_url)  # never share a parent's connections


def run_job_task(job_id: str) -> str:
    """The task: claim job ``job_id`` and run it; returns its final status, or ``"skipped"`` when it was not
    queued any more (another worker has it, it was cancelled or deleted, or it already ran)."""
    from cadenza.jobs.worker import Heartbeat, run_job

    state = _STATE
    if state is None:
        raise RuntimeError("this process is not a cadenza worker (init_worker was not called)")
    if state.engine is None:
        state.engine = make_engine(state.settings.database_url)
    settings = state.settings
    worker_id = store.worker_id_for(os.getpid())
    try:
        key = uuid.UUID(str(job_id))
    except ValueError:
        log.warning("celery message with a malformed job id", job_id=job_id)
        return "skipped"
    job = store.claim(state.engine, worker_id, key, settings.job_lease_s)
    if job is None:
        log.info("job not queued any more: message skipped", job_id=job_id)
        return "skipped"
    with Heartbeat(state.engine, job.id, worker_id, settings.job_lease_s):
        status = run_job(state.engine, settings, job, worker_id, state.cache)
    return status.value if status is not None else "lost"
