"""``WorkerPool``, the ``local`` executor: worker processes (spawned) and the supervisor thread that watches them.

The supervisor restarts dead workers (their job fails, or is retried once when the engine's
``retry_on_crash`` allows), kills workers whose job exceeded ``job_timeout_s`` or ignored a cancel for
:data:`CANCEL_GRACE_S`; the pool's :class:`~cadenza.jobs.maintenance.Maintenance` thread sweeps expired
leases (workers of any host) and applies retention every ``cleanup_interval_s``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

import structlog

from cadenza.db.models import utcnow
from cadenza.engines import registry
from cadenza.jobs import store
from cadenza.jobs.maintenance import Maintenance
from cadenza.jobs.service import JobService, retry_allowed
from cadenza.jobs.worker import WorkerConfig, worker_main
from cadenza.settings import Settings

log = structlog.get_logger(__name__)

CANCEL_GRACE_S = 5.0
"""A processing job still running this long after its cancel is stopped by killing its worker."""
SUPERVISOR_TICK_S = 0.2
STOP_JOIN_S = 5.0


@dataclass
class _Slot:
    index: int
    process: Any  # multiprocessing.context.SpawnProcess
    wake: Any
    busy: Any
    conn: Connection
    worker_id: str
    loaded: set[str] = field(default_factory=set)
    requests: int = 0
    replies: int = 0


class WorkerPool:
    """``settings.workers`` spawned worker processes plus a supervisor thread.

    ``service`` is the process's :class:`JobService` (its submissions wake idle workers at once);
    without one the pool makes its own and workers also find new jobs by polling the database every
    ``worker_poll_interval_s``. ``restarts`` counts worker processes replaced after a crash or kill.
    """

    def __init__(self, settings: Settings, service: JobService | None = None) -> None:
        self.settings = settings
        self.service = service or JobService(settings)
        self.maintenance = Maintenance(self.service)
        self.restarts = 0
        self._mp = multiprocessing.get_context("spawn")
        self._drain = self._mp.Event()
        self._slots: list[_Slot] = []
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Recover jobs left ``processing`` by a previous run, spawn the workers, start the supervisor."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self._drain.clear()
            self._closing.clear()
            self.service.recover_orphans()
            self._slots = [self._spawn(i) for i in range(self.settings.workers)]
            self.service.add_submit_listener(self.dispatch)
            self._thread = threading.Thread(target=self._supervise, name="cadenza-supervisor", daemon=True)
            self._thread.start()
            self.maintenance.start()
        log.info("worker pool started", workers=self.settings.workers)

    def _spawn(self, index: int) -> _Slot:
        wake, busy = self._mp.Event(), self._mp.Value("i", 0)
        parent_conn, child_conn = self._mp.Pipe(duplex=True)
        cfg = WorkerConfig(
            settings=self.settings,
            wake=wake,
            drain=self._drain,
            busy=busy,
            conn=child_conn,
            poll_interval_s=self.settings.worker_poll_interval_s,
        )
        process = self._mp.Process(target=worker_main, args=(cfg,), name=f"cadenza-worker-{index}", daemon=True)
        process.start()
        child_conn.close()
        return _Slot(index, process, wake, busy, parent_conn, store.worker_id_for(process.pid))

    def wake(self) -> None:
        """Wake idle workers: they claim the next queued jobs."""
        for slot in list(self._slots):
            slot.wake.set()

    def dispatch(self, job_id: Any = None) -> None:
        """A job was stored (``JobService.submit``): idle workers claim it (highest priority first)."""
        self.wake()

    def drain(self, timeout_s: float) -> None:
        """SIGTERM behaviour: claim nothing new, let running jobs finish for up to ``timeout_s``, then
        stop the processes; jobs still running are re-queued (their attempt not counted)."""
        with self._lock:
            if not self._started:
                return
            self._drain.set()
            self.wake()
        deadline = time.monotonic() + max(0.0, timeout_s)
        # idle workers exit at once on the drain flag, busy ones after their job
        while time.monotonic() < deadline and any(_alive(s) for s in self._slots):
            time.sleep(0.02)
        self._shutdown()

    def stop(self) -> None:
        """Stop at once: running jobs are interrupted and re-queued."""
        self.drain(0)

    def _shutdown(self) -> None:
        with self._lock:
            if not self._started:
                return
            self._closing.set()
            thread = self._thread
        self.maintenance.stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        with self._lock:
            self.service.remove_submit_listener(self.dispatch)
            for slot in self._slots:
                if slot.process.is_alive():
                    slot.process.terminate()
            for slot in self._slots:
                slot.process.join(timeout=STOP_JOIN_S)
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join(timeout=STOP_JOIN_S)
            for job_id, _kind, worker_id, _s, _c in store.processing_jobs(
                self.service.engine, [s.worker_id for s in self._slots]
            ):
                if store.requeue_interrupted(
                    self.service.engine, self.service.files_dir, job_id, worker_id, "the server shut down"
                ):
                    log.warning("job re-queued at shutdown", job_id=str(job_id))
            for slot in self._slots:
                slot.conn.close()
                with contextlib.suppress(ValueError):  # a process that would not die stays unclosed
                    slot.process.close()
            self._slots = []
            self._started = False
        log.info("worker pool stopped")

    # ------------------------------------------------------------------ introspection
    def status(self) -> dict[str, int]:
        """``{"workers": configured, "alive": n, "busy": n, "restarts": n}``."""
        slots = list(self._slots)
        alive = [s for s in slots if _alive(s)]
        return {
            "workers": self.settings.workers,
            "alive": len(alive),
            "busy": sum(1 for s in alive if s.busy.value),
            "restarts": self.restarts,
        }

    def request_model(self, name: str, action: str, wait_s: float = 30.0) -> int:
        """Ask every live worker to ``"load"`` or ``"unload"`` model ``name`` in its per-process cache
        (``EngineSpec.load_model`` / ``unload_model``); returns how many workers were asked.

        Waits up to ``wait_s`` for the idle workers to answer, so :meth:`loaded_models` reflects the
        result on return; busy workers act after their current job. Raises ValueError for a bad
        action, KeyError for an unknown model.
        """
        if action not in ("load", "unload"):
            raise ValueError("action must be 'load' or 'unload'")
        kind = registry.of(self.settings).model_kind(name, self.settings.models_dir)
        asked: list[tuple[_Slot, int]] = []
        with self._send_lock:
            for slot in list(self._slots):
                if not _alive(slot):
                    continue
                idle = not slot.busy.value
                try:
                    slot.conn.send(("model", kind, name, action))
                except OSError:
                    continue
                slot.wake.set()
                slot.requests += 1
                asked.append((slot, slot.requests if idle else -1))
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            self._read_messages()
            if all(n < 0 or slot.replies >= n or not _alive(slot) for slot, n in asked):
                break
            time.sleep(0.01)
        return len(asked)

    def loaded_models(self) -> set[str]:
        """Models loaded in at least one live worker (as reported back after load/unload requests)."""
        self._read_messages()
        return set().union(*(s.loaded for s in list(self._slots) if _alive(s)))

    # ------------------------------------------------------------------ supervisor
    def _read_messages(self) -> None:
        with self._recv_lock:
            for slot in list(self._slots):
                try:
                    while not slot.conn.closed and slot.conn.poll():
                        message = slot.conn.recv()
                        if message[0] == "changed":
                            self.service.job_changed(uuid.UUID(message[1]))
                        elif message[0] == "loaded":  # a job loaded a model, or one was evicted
                            slot.loaded = set(message[1])
                        elif message[0] == "models":
                            _, names, name, action, error = message
                            slot.loaded = set(names)
                            slot.replies += 1
                            if error:
                                log.warning("model request failed", model=name, action=action, error=error)
                except (EOFError, OSError):
                    continue

    def _supervise(self) -> None:
        while not self._closing.is_set():
            try:
                slots = list(self._slots)
                sentinels = [s.process.sentinel for s in slots]
                if sentinels:  # a worker's exit or message (a job changed) wakes the supervisor at once
                    wait(sentinels + [s.conn for s in slots if not s.conn.closed], timeout=SUPERVISOR_TICK_S)
                else:
                    self._closing.wait(SUPERVISOR_TICK_S)
                if self._closing.is_set():
                    break
                if self._drain.is_set():
                    self._closing.wait(SUPERVISOR_TICK_S)
                    continue
                with self._lock:
                    if self._closing.is_set():
                        break
                    self._read_messages()
                    self._reap_dead()
                    self._enforce_limits()
            except Exception:
                log.exception("supervisor tick failed")
                time.sleep(SUPERVISOR_TICK_S)

    def _replace(self, slot: _Slot) -> None:
        """Start a new process in ``slot``'s place (the old one is dead or killed)."""
        fresh = self._spawn(slot.index)  # first: if this fails the dead slot stays and is retried
        slot.process.join(timeout=STOP_JOIN_S)
        slot.conn.close()
        slot.process.close()
        self._slots[slot.index] = fresh
        self.restarts += 1

    def _reap_dead(self) -> None:
        for slot in list(self._slots):
            if slot.process.is_alive():
                continue
            code = slot.process.exitcode
            for job_id, kind, worker_id, _s, _c in store.processing_jobs(self.service.engine, [slot.worker_id]):
                attempts = self.service.get(job_id).attempts
                message = f"worker process exited with code {code} while running this job"
                new = store.requeue_or_fail(
                    self.service.engine,
                    self.service.files_dir,
                    job_id,
                    worker_id,
                    retry=retry_allowed(self.service.registry, kind, attempts),
                    error_type="WorkerCrashed",
                    message=message,
                )
                log.error("worker crashed during a job", job_id=str(job_id), exitcode=code, now=new)
            log.warning("replacing worker process", worker=slot.worker_id, exitcode=code)
            self._replace(slot)

    def _enforce_limits(self) -> None:
        by_id = {s.worker_id: s for s in self._slots}
        now = utcnow()
        for job_id, _kind, worker_id, started_at, cancel_at in store.processing_jobs(self.service.engine, list(by_id)):
            slot = by_id[worker_id]
            timed_out = started_at is not None and (now - started_at).total_seconds() > self.settings.job_timeout_s
            stuck_cancel = cancel_at is not None and (now - cancel_at).total_seconds() > CANCEL_GRACE_S
            if not (timed_out or stuck_cancel):
                continue
            slot.process.kill()
            slot.process.join(timeout=STOP_JOIN_S)
            if timed_out:
                message = f"the job exceeded the job timeout of {self.settings.job_timeout_s:g} s"
                store.requeue_or_fail(
                    self.service.engine,
                    self.service.files_dir,
                    job_id,
                    worker_id,
                    retry=False,
                    error_type="JobTimeout",
                    message=message,
                )
                log.error("job timed out; worker killed", job_id=str(job_id))
            else:
                store.cancel_processing(
                    self.service.engine,
                    self.service.files_dir,
                    job_id,
                    worker_id,
                    "cancelled by request; the worker did not stop in time and was killed",
                )
                log.warning("cancelled job did not stop; worker killed", job_id=str(job_id))
            self._replace(slot)


def _alive(slot: _Slot) -> bool:
    try:
        return slot.process.is_alive()
    except ValueError:  # process object already closed
        return False
