"""Cadenza's Celery application: the distributed executor's broker side and its worker task.

A Celery message carries only a job id. The task claims that job in the database with the same conditional
update the local workers use (:func:`cadenza.jobs.store.claim`), so a redelivered or duplicated message never
runs a job twice, then runs it with the local worker's code (:func:`cadenza.jobs.worker.run_job`: progress,
cancel checks, outputs and events in the database; a heartbeat renews the lease). Nothing else lives in the
broker: when Redis loses its data, the API's sweeper sends the queued jobs again.

Models: each worker process listens on the Redis channel ``cadenza:models:<queue>`` of each queue its worker
serves; a load or unload request (:meth:`cadenza.jobs.celery_executor.CeleryExecutor.request_model`) reaches
every process serving the engine's queue, which acts between jobs (a process lock keeps it off a running job)
and answers on the request's reply channel. Each process keeps ``cadenza:loaded:<worker>:<pid>`` (a JSON list
of its loaded models, expiring unless refreshed) for ``GET /v1/models`` and ``cadenza workers``.

Worker settings suit long GPU jobs (Celery's "optimizing" guide): one message prefetched per process
(``worker_prefetch_multiplier = 1``), late acknowledgement, and a message whose process died is rejected and
redelivered (``task_reject_on_worker_lost``). Each engine kind has a queue (``queues`` setting; default: its
kind), so a worker serves the engines its hardware suits.
"""

from __future__ import annotations

import json
import os
import threading
import time
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


MODELS_CHANNEL = "cadenza:models:{queue}"
REPLY_CHANNEL = "cadenza:models:reply:{request}"
LOADED_KEY = "cadenza:loaded:{node}:{pid}"
LOADED_TTL_S = 60
REFRESH_S = 15.0


@dataclass
class _WorkerState:
    """What one worker process holds: its settings, node name and queues, a database engine made after the fork,
    its model cache, and the lock that keeps model requests and jobs apart."""

    settings: Settings
    node: str
    queues: list[str]
    engine: Engine | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    loaded: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


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


def init_worker(settings: Settings, node: str, queues: list[str]) -> None:
    """Called by ``cadenza worker`` before Celery forks its processes: they inherit these settings, the
    worker's node name and the queues it serves."""
    global _STATE
    _STATE = _WorkerState(settings, node=node, queues=list(queues))


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    if _STATE is not None:
        _STATE.engine = make_engine(_STATE.settings.database_url)  # never share a parent's connections
        threading.Thread(target=_listen_for_models, args=(_STATE,), name="cadenza-models", daemon=True).start()


def _redis(settings: Settings) -> Any:
    import redis

    return redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5, health_check_interval=30)


def _loaded_key(state: _WorkerState) -> str:
    return LOADED_KEY.format(node=state.node, pid=os.getpid())


def _report_loaded(state: _WorkerState, client: Any) -> None:
    """Publish this process's loaded models (after evicting idle ones) under its expiring key."""
    from cadenza.jobs.worker import current_models

    names = current_models(state.settings, state.cache, state.loaded)
    client.set(_loaded_key(state), json.dumps(names), ex=LOADED_TTL_S)


def _listen_for_models(state: _WorkerState) -> None:
    """The model-request listener of one worker process (a daemon thread): serve load/unload requests on the
    queues' channels between jobs, refresh this process's loaded-models key."""
    from cadenza.jobs.worker import apply_model_command

    while True:
        try:
            client = _redis(state.settings)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(*[MODELS_CHANNEL.format(queue=q) for q in state.queues])
            last_report = 0.0
            while True:
                message = pubsub.get_message(timeout=REFRESH_S)
                if message is not None and message.get("type") == "message":
                    request = json.loads(message["data"])
                    with state.lock:  # never while a job of this process runs
                        error = apply_model_command(
                            state.settings,
                            state.cache,
                            state.loaded,
                            request["kind"],
                            request["name"],
                            request["action"],
                        )
                        _report_loaded(state, client)
                    reply = {"pid": os.getpid(), "node": state.node, "error": error}
                    client.publish(REPLY_CHANNEL.format(request=request["request"]), json.dumps(reply))
                    last_report = time.monotonic()
                elif time.monotonic() - last_report >= REFRESH_S:
                    if state.lock.acquire(blocking=False):
                        try:
                            _report_loaded(state, client)
                        finally:
                            state.lock.release()
                    else:  # a job runs: its models stay loaded, keep the key alive (no eviction mid-job)
                        client.expire(_loaded_key(state), LOADED_TTL_S)
                    last_report = time.monotonic()
        except Exception:  # the broker restarted: subscribe again
            log.warning("model listener lost the broker; reconnecting", exc_info=True)
            time.sleep(1.0)


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
    with state.lock, Heartbeat(state.engine, job.id, worker_id, settings.job_lease_s):
        status = run_job(state.engine, settings, job, worker_id, state.cache)
    return status.value if status is not None else "lost"
