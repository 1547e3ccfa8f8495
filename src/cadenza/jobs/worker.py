"""The worker process: claims jobs from the database and runs engines.

Started by :class:`cadenza.jobs.pool.WorkerPool` with the multiprocessing ``spawn`` context (never
fork: torch and its thread pools do not survive a fork). One job at a time; loaded models stay in the
per-process ``cache`` dict between jobs. The parent talks to the worker through a wake-up ``Event``
(set on submit), a drain ``Event`` (stop claiming) and a ``Pipe`` for model load/unload commands.

While a job runs, a :class:`Heartbeat` thread renews the job's lease every third of ``job_lease_s``
(progress writes renew it too); if the process dies anywhere, the lease runs out and whichever process
sweeps leases re-queues or fails the job (:meth:`cadenza.jobs.service.JobService.sweep_leases`).
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import shutil
import signal
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection as DBConnection
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from cadenza.db.models import Job, JobOutput, utcnow
from cadenza.db.session import make_engine, write_tx
from cadenza.engines import registry
from cadenza.engines.base import (
    EngineInputError,
    EngineResult,
    JobCancelled,
    RunContext,
    cached_model_ids,
    evict_idle_models,
)
from cadenza.jobs import store
from cadenza.jobs.views import JobStatus
from cadenza.logging import configure_logging
from cadenza.settings import Settings

log = structlog.get_logger(__name__)

PROGRESS_MIN_INTERVAL_S = 0.1
"""At most ~10 progress events per second per job (the first always; the last with the job's completion)."""
CANCEL_CHECK_INTERVAL_S = 0.2
"""How stale the cancel flag seen by the progress callback may be."""
HASH_CHUNK_BYTES = 1 << 20


@dataclass
class WorkerConfig:
    """Everything a spawned worker needs (pickled to the child)."""

    settings: Settings
    wake: Any  # multiprocessing.Event, set by the parent on submit
    drain: Any  # multiprocessing.Event: stop claiming, exit when idle
    busy: Any  # multiprocessing.Value('i'): 1 while running a job
    conn: Connection | None = None
    poll_interval_s: float = 0.5


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available else ``cpu``; other values unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class JobProgress:
    """The ``progress(percent, stage)`` callback of one job.

    Writes a ``progress`` event (and the job's ``progress``/``stage`` columns) at most every
    :data:`PROGRESS_MIN_INTERVAL_S`, always for the first call; the last reported progress, if throttled
    (:meth:`take_pending`), goes into the final transaction.
    Reads the cancel flag at most every :data:`CANCEL_CHECK_INTERVAL_S` and raises
    :class:`JobCancelled` once it is set or the job was deleted.
    """

    def __init__(self, engine: Engine, job_id: uuid.UUID, worker_id: str, lease_s: float = 30.0) -> None:
        self.engine, self.job_id, self.worker_id, self.lease_s = engine, job_id, worker_id, lease_s
        self.last_write = float("-inf")
        self.last_check = time.monotonic()
        self.pending: tuple[float, str] | None = None

    def __call__(self, percent: float, stage: str = "") -> None:
        percent = min(100.0, max(0.0, float(percent)))
        stage = str(stage)[:200]
        now = time.monotonic()
        if now - self.last_write >= PROGRESS_MIN_INTERVAL_S:  # the first call: last_write is -inf
            self._write(percent, stage)
            self.last_write = self.last_check = now
        else:
            self.pending = (percent, stage)
            if now - self.last_check >= CANCEL_CHECK_INTERVAL_S:
                self._check_cancel()
                self.last_check = now

    def take_pending(self) -> tuple[float, str] | None:
        """The last reported progress not written yet (for the final transaction), or None."""
        pending, self.pending = self.pending, None
        return pending

    def _write(self, percent: float, stage: str) -> None:
        self.pending = None
        with write_tx(self.engine) as session:
            self._raise_if_stopped(session)
            store.append_event(
                session,
                self.job_id,
                "progress",
                {"progress": percent, "stage": stage},
                values={
                    "progress": percent,
                    "stage": stage or None,
                    "lease_expires_at": store.lease_until(self.lease_s),
                },
            )

    def _check_cancel(self) -> None:
        with self.engine.connect() as conn:
            self._raise_if_stopped(conn)

    def _raise_if_stopped(self, db: Session | DBConnection) -> None:
        """Raise :class:`JobCancelled` if the job was deleted, taken away from this worker or cancelled."""
        row = db.execute(
            select(Job.status, Job.cancel_requested_at, Job.worker_id).where(Job.id == self.job_id)
        ).one_or_none()
        if row is None or row.status != JobStatus.processing.value or row.worker_id != self.worker_id:
            raise JobCancelled("the job was deleted or taken away from this worker")
        if row.cancel_requested_at is not None:
            raise JobCancelled("the job was cancelled")


class Heartbeat:
    """A daemon thread renewing one job's lease every ``lease_s / 3`` seconds until :meth:`stop`."""

    def __init__(self, engine: Engine, job_id: uuid.UUID, worker_id: str, lease_s: float) -> None:
        self.engine, self.job_id, self.worker_id, self.lease_s = engine, job_id, worker_id, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="cadenza-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                if not store.renew_lease(self.engine, self.job_id, self.worker_id, self.lease_s):
                    return  # the job is no longer ours (finished, cancelled, deleted, swept)
            except Exception:  # a database hiccup: try again at the next beat, the lease has slack
                log.warning("lease renewal failed", job_id=str(self.job_id), exc_info=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _record_outputs(workdir: Path, folder: Path, result: EngineResult) -> list[dict[str, Any]]:
    """Validate and hash the engine's outputs; their paths are stored relative to the job's ``folder``.
    Raises RuntimeError for a bad name or a path outside ``workdir`` (an engine bug, reported as the
    job's error)."""
    from cadenza.jobs.service import OUTPUT_NAME_RE

    root = workdir.resolve()
    records, seen = [], set()
    for out in result.outputs:
        if not OUTPUT_NAME_RE.fullmatch(out.name) or out.name in seen:
            raise RuntimeError(f"engine returned an invalid or duplicate output name {out.name!r}")
        seen.add(out.name)
        path = Path(out.path).resolve()  # engines build paths from ctx.workdir, which may be relative to the cwd
        if not path.is_relative_to(root) or not path.is_file():
            raise RuntimeError(f"engine output {out.name!r} is not a file inside the job folder: {out.path}")
        records.append(
            {
                "name": out.name,
                "media_type": out.media_type,
                "size_bytes": path.stat().st_size,
                "sha256": sha256_file(path),
                "path": path.relative_to(folder.resolve()).as_posix(),
                "metadata": dict(out.metadata)
                | ({"download_stem": out.download_stem} if getattr(out, "download_stem", None) else {}),
            }
        )
    return records


def _finish(
    engine: Engine,
    job_id: uuid.UUID,
    worker_id: str,
    status: JobStatus,
    *,
    error: tuple[str, str] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    result: dict[str, Any] | None = None,
    last_progress: tuple[float, str] | None = None,
) -> JobStatus | None:
    """Final transition written by the worker, with the engine's last unwritten ``progress`` event, the
    outputs and their ``output`` events in the same transaction; a cancel requested meanwhile wins over
    completion. Returns the status written, or None when the job is no longer this worker's (deleted,
    timed out): then nothing is written."""
    with write_tx(engine) as session:
        # the row stays locked until commit (FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite)
        row = session.execute(
            select(Job.status, Job.worker_id, Job.cancel_requested_at).where(Job.id == job_id).with_for_update()
        ).one_or_none()
        if row is None or row.status != JobStatus.processing.value or row.worker_id != worker_id:
            return None
        if status is JobStatus.completed and row.cancel_requested_at is not None:
            status, outputs = JobStatus.cancelled, None
        values: dict[str, Any] = {"completed_at": utcnow()}
        event: dict[str, Any] = {}
        values["lease_expires_at"] = None
        values["stage"] = None  # a final job has no stage ("encoding" stayed on completed jobs)
        if status is JobStatus.completed:
            values.update(progress=100.0, result=result)
            if last_progress is not None:
                percent, stage = last_progress
                store.append_event(session, job_id, "progress", {"progress": percent, "stage": stage})
        if error is not None:
            values.update(error_type=error[0], error_message=error[1])
            event["error"] = {"type": error[0], "message": error[1]}
        if outputs:
            columns = ("name", "media_type", "size_bytes", "sha256", "path", "metadata")
            session.execute(
                insert(JobOutput.__table__), [{"job_id": job_id} | {k: o[k] for k in columns} for o in outputs]
            )
        for out in outputs or []:
            store.append_event(
                session,
                job_id,
                "output",
                {k: out[k] for k in ("name", "media_type", "size_bytes", "sha256")},
            )
        store.transition(
            session,
            job_id,
            from_status=(JobStatus.processing,),
            to_status=status,
            values=values,
            event=event,
            worker_id=worker_id,
        )
    return status


def run_job(
    engine: Engine, settings: Settings, job: store.ClaimedJob, worker_id: str, cache: dict[str, Any]
) -> JobStatus | None:
    """Run one claimed job to its final state (see the module docs of :mod:`cadenza.jobs`)."""
    files_dir = Path(settings.files_dir)
    folder = store.job_dir(files_dir, job.id)
    workdir = store.attempt_dir(files_dir, job.id, job.attempts)
    bound = log.bind(job_id=str(job.id), kind=job.kind, attempt=job.attempts)
    progress = JobProgress(engine, job.id, worker_id, settings.job_lease_s)
    started = time.monotonic()
    try:
        # Only this attempt's folder: an earlier attempt's was removed when it was re-queued, and a
        # worker must never touch another attempt's files (it may be a stalled one waking up late).
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        spec = registry.of(settings).get(job.kind)
        params, _ = spec.validate(job.params, settings)  # the API's validation path, with these settings
        ctx = RunContext(
            workdir=workdir,
            models_dir=Path(settings.models_dir),
            cache=cache,
            device=resolve_device(settings.device),
            settings=settings,
            inputs=job.input_paths(files_dir),
        )
        bound.info("job started")
        result = spec.resolve("run")(params, progress, ctx)
        outputs = _record_outputs(workdir, folder, result)
        payload = dict(result.metadata)
        payload["warnings"] = list(result.warnings)
        status = _finish(
            engine,
            job.id,
            worker_id,
            JobStatus.completed,
            outputs=outputs,
            result=payload,
            last_progress=progress.take_pending(),
        )
    except JobCancelled:
        status = _finish(engine, job.id, worker_id, JobStatus.cancelled)
    except EngineInputError as exc:
        status = _finish(engine, job.id, worker_id, JobStatus.failed, error=("EngineInputError", str(exc)))
    except Exception as exc:
        bound.error("job failed", error=repr(exc), traceback=traceback.format_exc())
        message = str(exc) or exc.__class__.__name__
        status = _finish(engine, job.id, worker_id, JobStatus.failed, error=(type(exc).__name__, message))
    if status is None and _status(engine, job.id) in (JobStatus.queued, JobStatus.processing, JobStatus.completed):
        # The job is another worker's now (this one stalled past its lease): touch only this attempt.
        shutil.rmtree(workdir, ignore_errors=True)
    elif status is not JobStatus.completed:
        store.remove_job_files(files_dir, job.id)  # failed, cancelled or deleted: no files at all
    bound.info("job finished", status=status.value if status else "lost", run_s=round(time.monotonic() - started, 3))
    return status


def _status(engine: Engine, job_id: uuid.UUID) -> JobStatus | None:
    """The job's status now (None once it was deleted)."""
    with engine.connect() as conn:
        value = conn.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()
    return None if value is None else JobStatus(value)


def apply_model_command(
    settings: Settings, cache: dict[str, Any], loaded: set[str], kind: str, name: str, action: str
) -> str | None:
    """Load or unload model ``name`` of engine ``kind`` in this process (``EngineSpec.load_model`` /
    ``unload_model`` on its cache); returns an error message or None. ``loaded`` tracks the models an engine
    keeps itself (not through ``base.cached_model``)."""
    try:
        spec = registry.of(settings).get(kind)
        fn = spec.resolve("load_model" if action == "load" else "unload_model")
        if fn is None:
            return f"engine {kind!r} cannot {action} models"
        ctx = RunContext(
            workdir=Path(settings.files_dir),
            models_dir=Path(settings.models_dir),
            cache=cache,
            device=resolve_device(settings.device),
            settings=settings,
        )
        fn(name, ctx)
    except Exception as exc:
        log.exception("model request failed", model=name, action=action)
        return f"{type(exc).__name__}: {exc}"
    if action == "load" and name not in cached_model_ids(cache):
        loaded.add(name)  # a model the engine keeps itself; base.cached_model's are tracked by the cache
    elif action == "unload":
        loaded.discard(name)
    return None


def loaded_names(cache: dict[str, Any], loaded: set[str]) -> list[str]:
    """Models loaded in this process: those loaded on request that their engine keeps itself, plus every
    model held by ``base.cached_model`` (loaded by a request or a job, until an LRU or idle eviction)."""
    return sorted(loaded | cached_model_ids(cache))


def _serve_commands(cfg: WorkerConfig, cache: dict[str, Any], loaded: set[str]) -> None:
    conn = cfg.conn
    if conn is None:
        return
    try:
        while conn.poll():
            message = conn.recv()
            if message[0] == "model":
                _, kind, name, action = message
                error = apply_model_command(cfg.settings, cache, loaded, kind, name, action)
                conn.send(("models", loaded_names(cache, loaded), name, action, error))
    except (EOFError, OSError):
        return


def current_models(settings: Settings, cache: dict[str, Any], loaded: set[str]) -> list[str]:
    """Unload models idle past their engine's ``model_idle_s``; the names of those loaded now (both executors
    report this)."""
    evict_idle_models(cache, settings)
    return loaded_names(cache, loaded)


def _report_models(cfg: WorkerConfig, cache: dict[str, Any], loaded: set[str], reported: list[str]) -> list[str]:
    """Tell the pool when the loaded set changed (explicit loads, models jobs loaded, LRU and idle evictions:
    :func:`current_models`). Returns what was reported."""
    names = current_models(cfg.settings, cache, loaded)
    if names != reported:
        _tell(cfg, ("loaded", names))
    return names


def _tell(cfg: WorkerConfig, message: tuple) -> None:
    """Send ``message`` to the pool (if any); a pool that is gone is not this worker's problem."""
    if cfg.conn is not None:
        with contextlib.suppress(OSError, ValueError):
            cfg.conn.send(message)


def worker_main(cfg: WorkerConfig) -> None:
    """Entry point of a spawned worker process: claim → run → repeat until drained or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    configure_logging(cfg.settings.log_format, cfg.settings.log_level)
    engine = make_engine(cfg.settings.database_url)
    worker_id = store.worker_id_for(os.getpid())
    structlog.contextvars.bind_contextvars(worker=worker_id)
    parent = multiprocessing.parent_process()
    cache: dict[str, Any] = {}
    loaded: set[str] = set()
    reported: list[str] = []
    log.info("worker started")
    try:
        while not cfg.drain.is_set():
            _serve_commands(cfg, cache, loaded)
            reported = _report_models(cfg, cache, loaded, reported)
            if parent is not None and not parent.is_alive():
                log.warning("parent process gone; worker exits")
                break
            cfg.wake.clear()
            job = store.claim_next(engine, worker_id, cfg.settings.job_lease_s)
            if job is None:
                cfg.wake.wait(cfg.poll_interval_s)
                continue
            cfg.busy.value = 1
            _tell(cfg, ("changed", str(job.id)))  # now processing
            try:
                with Heartbeat(engine, job.id, worker_id, cfg.settings.job_lease_s):
                    run_job(engine, cfg.settings, job, worker_id, cache)
            finally:
                cfg.busy.value = 0
                _tell(cfg, ("changed", str(job.id)))  # final (or lost): waiters re-read now
    finally:
        engine.dispose()
        log.info("worker stopped")
