"""The distributed executor (``executor: celery``): jobs run in ``cadenza worker`` processes on any host, fed by
Celery over Redis; the database (PostgreSQL) stays the one source of truth.

On the API side it only sends: after a job is stored, a task carrying its id goes to the queue of its engine
(:func:`cadenza.jobs.celery_app.queue_for`). A sweeper thread sends again the jobs that have stayed queued
longer than ``celery_resend_after_s`` when the broker holds fewer messages than such jobs (Redis restarted
without its data, a send failed while the broker was away): a duplicate is harmless, the worker's claim skips it.
:class:`~cadenza.jobs.maintenance.Maintenance` sweeps expired leases (a worker killed mid-job) and retention,
as with any executor.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import func, select

from cadenza.db.models import Job, utcnow
from cadenza.db.session import read_tx
from cadenza.jobs.celery_app import (
    LOADED_KEY,
    MODELS_CHANNEL,
    REPLY_CHANNEL,
    TASK_NAME,
    all_queues,
    make_app,
    queue_for,
)
from cadenza.jobs.maintenance import Maintenance
from cadenza.jobs.service import JobService
from cadenza.jobs.views import JobStatus
from cadenza.settings import Settings

log = structlog.get_logger(__name__)

INSPECT_TIMEOUT_S = 1.0
INSPECT_CACHE_S = 2.0
"""``/ready`` and ``/metrics`` (a scrape usually asks both) share one look at the workers for this long."""
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


class CeleryExecutor:
    """Sends jobs to Celery workers; see the module docstring."""

    def __init__(self, settings: Settings, service: JobService) -> None:
        self.settings, self.service = settings, service
        self.app = make_app(settings)
        self.maintenance = Maintenance(service)
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._redis: Any = None
        self._inspect_lock = threading.Lock()
        self._inspected: tuple[float, list[dict[str, Any]]] = (float("-inf"), [])

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.service.add_submit_listener(self.dispatch)
        self.maintenance.start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="cadenza-celery-sweeper", daemon=True)
        self._sweeper.start()
        log.info("celery executor started", queues=self.queues())

    def drain(self, timeout_s: float) -> None:
        """Nothing runs here: workers drain themselves on SIGTERM (``cadenza worker``)."""
        self.service.remove_submit_listener(self.dispatch)

    def stop(self) -> None:
        self.service.remove_submit_listener(self.dispatch)
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        self.maintenance.stop()
        if self._redis is not None:
            self._redis.close()

    # ------------------------------------------------------------------ sending
    def queues(self) -> list[str]:
        return all_queues(self.settings, list(self.service.registry.kinds))

    def dispatch(self, job_id: uuid.UUID) -> None:
        """Send job ``job_id`` to its engine's queue (the message is the id alone)."""
        with read_tx(self.service.engine) as session:
            kind = session.scalar(select(Job.kind).where(Job.id == job_id))
        if kind is not None:
            self._send(job_id, kind)

    def _send(self, job_id: uuid.UUID, kind: str) -> None:
        self.app.send_task(
            TASK_NAME,
            args=[str(job_id)],
            queue=queue_for(self.settings, kind),
            retry=True,
            retry_policy=PUBLISH_RETRY,
        )

    def resend_lost(self) -> int:
        """Send again the jobs queued for over ``celery_resend_after_s`` in each queue whose broker list holds
        fewer messages than such jobs; returns how many were sent."""
        cutoff = utcnow() - timedelta(seconds=self.settings.celery_resend_after_s)
        with read_tx(self.service.engine) as session:
            rows = session.execute(
                select(Job.id, Job.kind)
                .where(Job.status == JobStatus.queued.value, Job.created_at < cutoff)
                .order_by(Job.priority.desc(), Job.created_at)
                .limit(1000)
            ).all()
        if not rows:
            return 0
        depths = self.queue_depths()
        reserved = self._unacked()
        by_queue: dict[str, list[tuple[uuid.UUID, str]]] = {}
        for job_id, kind in rows:
            by_queue.setdefault(queue_for(self.settings, kind), []).append((job_id, kind))
        sent = 0
        for queue, jobs in by_queue.items():
            if depths.get(queue, 0) + reserved >= len(jobs):
                continue  # the broker holds a message for each (or workers hold them reserved)
            for job_id, kind in jobs:
                self._send(job_id, kind)
                sent += 1
        if sent:
            log.warning("queued jobs sent again (the broker had lost their messages)", count=sent)
        return sent

    def _sweep_loop(self) -> None:
        interval_s = max(1.0, self.settings.celery_resend_after_s / 3)
        while not self._stop.wait(interval_s):
            try:
                self.resend_lost()
            except Exception:  # the broker or the database is away: the next round tries again
                log.warning("celery sweep failed", exc_info=True)

    # ------------------------------------------------------------------ observability
    def _client(self) -> Any:
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
        return self._redis

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting in each engine queue of the broker (Redis lists)."""
        client = self._client()
        return {queue: int(client.llen(queue)) for queue in self.queues()}

    def _unacked(self) -> int:
        """Messages delivered to workers and not yet acknowledged (kombu's ``unacked`` hash)."""
        return int(self._client().hlen("unacked"))

    def ping_broker(self) -> None:
        """Raises the client's error when the broker is unreachable."""
        self._client().ping()

    def workers(self) -> list[dict[str, Any]]:
        """Live workers (Celery's remote control): ``name``, ``queues``, ``concurrency``, ``device``, ``active``
        (jobs running), ``models`` (loaded in its processes)."""
        with self._inspect_lock:
            if time.monotonic() - self._inspected[0] < INSPECT_CACHE_S:
                return self._inspected[1]
            found = self._inspect_workers()
            self._inspected = (time.monotonic(), found)
            return found

    def _inspect_workers(self) -> list[dict[str, Any]]:
        # Each remote-control call waits its whole timeout for replies: the three run at once, not one after another
        with ThreadPoolExecutor(3) as pool:
            calls = [
                pool.submit(getattr(self.app.control.inspect(timeout=INSPECT_TIMEOUT_S), name))
                for name in ("active_queues", "stats", "active")
            ]
            queues, stats, active = (call.result() or {} for call in calls)
        loaded = self.loaded_by_process()
        found = []
        for name in sorted(set(queues) | set(stats)):
            pool = (stats.get(name) or {}).get("pool", {})
            found.append(
                {
                    "name": name,
                    "queues": sorted(q["name"] for q in queues.get(name, [])),
                    "concurrency": int(pool.get("max-concurrency", 0) or 0),
                    "device": name.split("@", 1)[0].rpartition(".")[2] if "." in name.split("@", 1)[0] else "",
                    "active": len(active.get(name, []) or []),
                    "models": sorted(set().union(*(m for key, m in loaded.items() if key.rpartition(":")[0] == name))),
                }
            )
        return found

    def status(self) -> dict[str, Any]:
        """``workers`` (processes of live workers), ``alive`` (live workers), ``busy`` (jobs running),
        ``restarts`` (0: Celery replaces its own processes), ``queues`` (queue → live workers serving it)."""
        try:
            workers = self.workers()
        except Exception:  # the broker is away
            workers = []
        serving = {queue: 0 for queue in self.queues()}
        for worker in workers:
            for queue in worker["queues"]:
                serving[queue] = serving.get(queue, 0) + 1
        return {
            "workers": sum(w["concurrency"] for w in workers),
            "alive": len(workers),
            "busy": sum(w["active"] for w in workers),
            "restarts": 0,
            "queues": serving,
        }

    def request_model(self, name: str, action: str, wait_s: float = 30.0) -> int:
        """Ask every worker process serving the queue of model ``name``'s engine to ``"load"`` or ``"unload"`` it
        (Redis pub/sub; a busy process acts after its job); waits up to ``wait_s`` for their answers and returns
        how many were asked. Raises ValueError (bad action), KeyError (unknown model)."""
        if action not in ("load", "unload"):
            raise ValueError("action must be 'load' or 'unload'")
        kind = self.service.registry.model_kind(name, self.settings.models_dir)
        request = uuid.uuid4().hex
        client = self._client()
        replies = client.pubsub(ignore_subscribe_messages=True)
        replies.subscribe(REPLY_CHANNEL.format(request=request))
        try:
            message = json.dumps({"kind": kind, "name": name, "action": action, "request": request})
            asked = int(client.publish(MODELS_CHANNEL.format(queue=queue_for(self.settings, kind)), message))
            answered, deadline = 0, time.monotonic() + wait_s
            while answered < asked and time.monotonic() < deadline:
                reply = replies.get_message(timeout=max(0.01, deadline - time.monotonic()))
                if reply is not None and reply.get("type") == "message":
                    answered += 1
                    error = json.loads(reply["data"]).get("error")
                    if error:
                        log.warning("model request failed", model=name, action=action, error=error)
        finally:
            replies.close()
        return asked

    def loaded_by_process(self) -> dict[str, set[str]]:
        """``{"<worker>:<pid>": models}`` of every live worker process (keys expire unless refreshed)."""
        client = self._client()
        keys = list(client.scan_iter(match=LOADED_KEY.format(node="*", pid="*"), count=500))
        found: dict[str, set[str]] = {}
        for key, value in zip(keys, client.mget(keys) if keys else [], strict=True):  # one round trip for all
            if value is not None:
                name = key.decode() if isinstance(key, bytes) else str(key)
                found[name.removeprefix("cadenza:loaded:")] = set(json.loads(value))
        return found

    def loaded_models(self) -> set[str]:
        """Models loaded in at least one live worker process."""
        try:
            return set().union(*self.loaded_by_process().values())
        except Exception:  # the broker is away
            return set()

    def queued_by_queue(self) -> dict[str, int]:
        """Queued jobs per queue, from the database."""
        with read_tx(self.service.engine) as session:
            rows = session.execute(
                select(Job.kind, func.count()).where(Job.status == JobStatus.queued.value).group_by(Job.kind)
            ).all()
        counts: dict[str, int] = {queue: 0 for queue in self.queues()}
        for kind, count in rows:
            queue = queue_for(self.settings, kind)
            counts[queue] = counts.get(queue, 0) + int(count)
        return counts
