"""``JobService``: the job layer's API for the HTTP layer and the CLI (submit, read, cancel, prune, keys).

It never runs a model: ``submit`` stores a ``queued`` row (and its first event) and wakes local idle
workers; worker processes (:mod:`cadenza.jobs.pool`, :mod:`cadenza.jobs.worker`) do the work.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import structlog
from sqlalchemy import and_, case, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenza.db.models import ApiKey, Job, JobEvent, JobOutput, epoch_s, utcnow
from cadenza.db.session import make_engine, read_tx, upgrade_database, write_tx
from cadenza.engines import registry
from cadenza.jobs import store
from cadenza.jobs.views import (
    FINAL,
    IdempotencyConflict,
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
from cadenza.settings import Settings

log = structlog.get_logger(__name__)

OUTPUT_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$")
"""Output (download) names: letters, digits, ``._-``, not starting with a dot, at most 255 characters."""

TimestampColumn = Literal["created_at", "started_at", "completed_at"]
KEY_PREFIX = "cdz_"
MAX_LIST_LIMIT = 500
WAIT_POLL_MIN_S = 0.02
WAIT_POLL_FAST_S = 1.0
WAIT_POLL_MAX_S = 0.2
"""``wait()`` polls every 20 ms for the first second (short jobs, e.g. a 4-bar drums job, return at
once), then backs off ×1.5 per poll to every 200 ms."""


def request_sha256(kind: str, params: dict[str, Any], upload_info: dict[str, Any] | None) -> str:
    """Canonical hash of a request, compared for idempotent repeats."""
    payload = json.dumps({"kind": kind, "params": params, "upload": upload_info}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _key_view(key: ApiKey) -> KeyView:
    return KeyView(id=key.id, name=key.name, prefix=key.prefix, created_at=key.created_at, revoked_at=key.revoked_at)


class JobService:
    """Jobs, their events and files, and API keys, backed by the database at ``settings.database_url``.

    Construction creates the engine, applies the Alembic migrations (idempotent) and creates
    ``settings.files_dir``. Thread-safe; one instance per process.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.files_dir = Path(settings.files_dir)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.database_url)
        upgrade_database(self.engine)
        self._listeners: list[Callable[[], None]] = []
        self._listeners_lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing
    def add_submit_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after each submission (a local worker pool wakes its idle workers)."""
        with self._listeners_lock:
            self._listeners.append(callback)

    def remove_submit_listener(self, callback: Callable[[], None]) -> None:
        with self._listeners_lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def _notify(self) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback()
            except Exception:  # a broken listener must not fail a submission that is already stored
                log.exception("submit listener failed")

    def ping(self) -> None:
        """``SELECT 1``; raises the driver's error when the database is unreachable."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close pooled database connections."""
        self.engine.dispose()

    def _job(self, session: Session, job_id: uuid.UUID | str, owner: str | None) -> Job:
        try:
            key = job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
        except ValueError:
            raise JobNotFound(f"no job {job_id}") from None
        job = session.get(Job, key)
        if job is None or (owner is not None and job.owner != owner):
            raise JobNotFound(f"no job {job_id}")
        return job

    def _outputs(self, session: Session, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[JobOutput]]:
        result: dict[uuid.UUID, list[JobOutput]] = {jid: [] for jid in job_ids}
        if job_ids:
            rows = session.scalars(select(JobOutput).where(JobOutput.job_id.in_(job_ids)).order_by(JobOutput.id))
            for row in rows:
                result[row.job_id].append(row)
        return result

    def _view(self, session: Session, job: Job) -> JobView:
        return store.to_view(job, self._outputs(session, [job.id])[job.id])

    # ------------------------------------------------------------------ jobs
    def submit(
        self,
        kind: str,
        params: dict[str, Any],
        *,
        owner: str | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
        upload: Path | None = None,
        upload_info: dict[str, Any] | None = None,
    ) -> tuple[JobView, bool]:
        """Store a ``queued`` job and its first event (sequence 1); returns ``(job, created)``.

        ``params`` must be the JSON-able, already validated request. With ``idempotency_key``, a repeat
        of the same kind + params (+ ``upload_info``) by the same owner returns the existing job and
        ``created=False``; different ones raise :class:`IdempotencyConflict`. ``upload`` (a staged
        file) is moved into ``<files_dir>/<job_id>/.upload/`` and given to the engine as
        ``RunContext.input_path``; the service owns it from here: when no job is created it is deleted.
        Raises ``ValueError`` for an unknown kind.
        """
        try:
            if kind not in registry.ENGINE_MODULES:
                raise ValueError(f"unknown job kind {kind!r}")
            digest = request_sha256(kind, params, upload_info)
            scope = (owner or "-") if idempotency_key else None
            if idempotency_key:
                existing = self._find_idempotent(scope, idempotency_key, kind, digest)
                if existing is not None:
                    return existing, False
            job_id = uuid.uuid4()
            folder = store.job_dir(self.files_dir, job_id)
            input_name = None
            try:
                with write_tx(self.engine) as session:
                    if upload is not None:
                        input_name = _safe_upload_name(Path(upload).name)
                        (folder / store.UPLOAD_DIR).mkdir(parents=True)
                        shutil.move(str(upload), folder / store.UPLOAD_DIR / input_name)
                        upload = None
                    session.add(
                        Job(
                            id=job_id,
                            kind=kind,
                            status=JobStatus.queued.value,
                            params=params,
                            progress=0.0,
                            sequence=0,
                            owner=owner,
                            priority=priority,
                            attempts=0,
                            idempotency_key=idempotency_key,
                            idempotency_scope=scope,
                            request_sha256=digest,
                            input_name=input_name,
                            upload_info=upload_info,
                            created_at=utcnow(),
                        )
                    )
                    session.flush()
                    store.append_event(session, job_id, "status", {"status": JobStatus.queued.value})
            except IntegrityError:
                shutil.rmtree(folder, ignore_errors=True)
                existing = self._find_idempotent(scope, idempotency_key, kind, digest) if idempotency_key else None
                if existing is None:
                    raise
                return existing, False
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        finally:
            if upload is not None:
                Path(upload).unlink(missing_ok=True)
        self._notify()
        log.info("job submitted", job_id=str(job_id), kind=kind, owner=owner, priority=priority)
        return self.get(job_id), True

    def _find_idempotent(self, scope: str | None, key: str, kind: str, digest: str) -> JobView | None:
        with read_tx(self.engine) as session:
            job = session.scalar(select(Job).where(Job.idempotency_scope == scope, Job.idempotency_key == key))
            if job is None:
                return None
            if job.kind != kind or job.request_sha256 != digest:
                raise IdempotencyConflict(
                    f"idempotency key {key!r} was already used for a different request (job {job.id})"
                )
            return self._view(session, job)

    def get(self, job_id: uuid.UUID, owner: str | None = None) -> JobView:
        """The job; ``owner=None`` (admin or auth off) sees every job. Raises JobNotFound."""
        with read_tx(self.engine) as session:
            return self._view(session, self._job(session, job_id, owner))

    def list(
        self,
        owner: str | None = None,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[JobView], str | None]:
        """Jobs newest first, at most ``limit`` (1–500); returns ``(jobs, next_cursor)`` where
        ``next_cursor`` is None on the last page. Raises ``ValueError`` for a bad limit or cursor."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        query = select(Job)
        if owner is not None:
            query = query.where(Job.owner == owner)
        if status is not None:
            query = query.where(Job.status == JobStatus(status).value)
        if kind is not None:
            query = query.where(Job.kind == kind)
        if cursor:
            created, last_id = _decode_cursor(cursor)
            query = query.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < last_id)))
        query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
        with read_tx(self.engine) as session:
            jobs = list(session.scalars(query))
            more = len(jobs) > limit
            jobs = jobs[:limit]
            outputs = self._outputs(session, [j.id for j in jobs])
            views = [store.to_view(j, outputs[j.id]) for j in jobs]
        next_cursor = _encode_cursor(jobs[-1].created_at, jobs[-1].id) if more and jobs else None
        return views, next_cursor

    def cancel(self, job_id: uuid.UUID, owner: str | None = None) -> JobView:
        """Cancel a job (idempotent). A queued job is cancelled at once (its files removed); a
        processing job is flagged and its worker stops at the next progress call (about a second);
        a final job is returned unchanged. Raises JobNotFound."""
        for _ in range(5):
            with write_tx(self.engine) as session:
                job = self._job(session, job_id, owner)
                status = JobStatus(job.status)
                if status in FINAL:
                    return self._view(session, job)
                if status is JobStatus.queued:
                    done = store.transition(
                        session,
                        job.id,
                        from_status=(JobStatus.queued,),
                        to_status=JobStatus.cancelled,
                        values={"completed_at": utcnow(), "cancel_requested_at": utcnow()},
                        event={"reason": "cancelled by request"},
                    )
                    if not done:
                        continue
                else:
                    if job.cancel_requested_at is None:
                        session.execute(
                            update(Job)
                            .where(Job.id == job.id, Job.status == JobStatus.processing.value)
                            .values(cancel_requested_at=utcnow())
                            .execution_options(synchronize_session=False)
                        )
                    done = False
                session.expire_all()
                view = self._view(session, self._job(session, job.id, None))
            if done:
                store.remove_job_files(self.files_dir, view.id)
            log.info("job cancel requested", job_id=str(view.id), status=view.status.value)
            return view
        raise RuntimeError(f"job {job_id} kept changing state while being cancelled")

    def delete(self, job_id: uuid.UUID, owner: str | None = None) -> None:
        """Delete a job with its events, outputs and files (a running job is cancelled first; its
        worker notices the job is gone at its next progress call). Raises JobNotFound."""
        view = self.cancel(job_id, owner)
        with write_tx(self.engine) as session:
            store.delete_jobs(session, [view.id])
        store.remove_job_files(self.files_dir, view.id)

    def events(self, job_id: uuid.UUID, owner: str | None = None, after_sequence: int = 0) -> list[JobEventView]:
        """Events with ``sequence > after_sequence``, in order. Raises JobNotFound."""
        with read_tx(self.engine) as session:
            job = self._job(session, job_id, owner)
            rows = session.scalars(
                select(JobEvent)
                .where(JobEvent.job_id == job.id, JobEvent.sequence > after_sequence)
                .order_by(JobEvent.sequence)
            )
            return [JobEventView(sequence=e.sequence, type=e.type, data=e.data, created_at=e.created_at) for e in rows]

    def _status(self, job_id: uuid.UUID, owner: str | None) -> JobStatus:
        with read_tx(self.engine) as session:
            return JobStatus(self._job(session, job_id, owner).status)

    async def wait(self, job_id: uuid.UUID, owner: str | None = None, timeout_s: float = 0) -> JobView:
        """Return the job once it is final or ``timeout_s`` passed. Polls the status off the event loop
        (worker processes have no channel to this one): every :data:`WAIT_POLL_MIN_S` for the first
        :data:`WAIT_POLL_FAST_S`, then backing off to :data:`WAIT_POLL_MAX_S`, so a long wait costs a few
        queries per second, not 50. Raises JobNotFound."""
        start = time.monotonic()
        deadline = start + max(0.0, timeout_s)
        interval_s = WAIT_POLL_MIN_S
        while True:
            status = await asyncio.to_thread(self._status, job_id, owner)
            now = time.monotonic()
            if status in FINAL or now >= deadline:
                return await asyncio.to_thread(self.get, job_id, owner)
            if now - start >= WAIT_POLL_FAST_S:
                interval_s = min(WAIT_POLL_MAX_S, interval_s * 1.5)
            await asyncio.sleep(min(interval_s, max(0.0, deadline - now)))

    def output_file(self, job_id: uuid.UUID, owner: str | None, name: str) -> tuple[OutputView, Path]:
        """The output ``name`` of a completed job and its path on disk.

        Raises JobNotFound, OutputNotFound (unknown or malformed name), JobNotReady (queued or
        processing), JobGone (failed, cancelled, or its file was pruned).
        """
        with read_tx(self.engine) as session:
            job = self._job(session, job_id, owner)
            status = JobStatus(job.status)
            if status in (JobStatus.queued, JobStatus.processing):
                raise JobNotReady(f"job {job.id} is {status.value}")
            if status is not JobStatus.completed:
                raise JobGone(f"job {job.id} is {status.value}; it has no files")
            if not OUTPUT_NAME_RE.fullmatch(name):
                raise OutputNotFound(f"job {job.id} has no output {name!r}")
            row = session.scalar(select(JobOutput).where(JobOutput.job_id == job.id, JobOutput.name == name))
            if row is None:
                raise OutputNotFound(f"job {job.id} has no output {name!r}")
            view = OutputView(
                name=row.name,
                media_type=row.media_type,
                size_bytes=row.size_bytes,
                sha256=row.sha256,
                metadata=row.meta,
            )
            folder = store.job_dir(self.files_dir, job.id).resolve()
            path = (folder / row.path).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            raise JobGone(f"the file {name!r} of job {job_id} is no longer available")
        return view, path

    def prune(self, now: datetime | None = None) -> dict[str, int]:
        """Delete final jobs past retention (``retention_completed_h`` for completed,
        ``retention_failed_h`` for failed and cancelled; 0 keeps them) with their events, outputs and
        files. Returns counts ``{"completed", "failed", "cancelled", "jobs"}``."""
        now = now or utcnow()
        rules = [
            (JobStatus.completed, self.settings.retention_completed_h),
            (JobStatus.failed, self.settings.retention_failed_h),
            (JobStatus.cancelled, self.settings.retention_failed_h),
        ]
        counts = {status.value: 0 for status, _ in rules}
        for status, hours in rules:
            if hours <= 0:
                continue
            cutoff = now - timedelta(hours=hours)
            while True:
                with write_tx(self.engine) as session:
                    ids = list(
                        session.scalars(
                            select(Job.id)
                            .where(Job.status == status.value, Job.completed_at < cutoff)
                            .order_by(Job.completed_at)
                            .limit(200)
                        )
                    )
                    store.delete_jobs(session, ids)
                for jid in ids:
                    store.remove_job_files(self.files_dir, jid)
                counts[status.value] += len(ids)
                if len(ids) < 200:
                    break
        counts["jobs"] = sum(counts.values())
        if counts["jobs"]:
            log.info("pruned jobs", **counts)
        return counts

    def queue_depth(self) -> int:
        """Number of queued jobs."""
        with read_tx(self.engine) as session:
            return session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.queued.value))

    def counts_by_kind_status(self) -> dict[tuple[str, str], int]:
        """``{(kind, status): count}`` over all stored jobs (for metrics)."""
        with read_tx(self.engine) as session:
            rows = session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)).all()
        return {(k, s): n for k, s, n in rows}

    def duration_histogram(
        self, start: TimestampColumn, end: TimestampColumn, buckets_s: tuple[float, ...]
    ) -> dict[str, tuple[list[int], float, int]]:
        """Histogram of ``end - start`` seconds (two timestamp columns of ``jobs``) over finished jobs
        that have both, aggregated in SQL (one grouped query, no rows fetched):
        ``{kind: (cumulative count ≤ each bucket, sum_s, count)}`` (for metrics)."""
        begin, finish = getattr(Job, start), getattr(Job, end)
        seconds = epoch_s(finish) - epoch_s(begin)
        query = (
            select(
                Job.kind,
                func.count(),
                func.sum(case((seconds > 0, seconds), else_=0.0)),
                *(func.sum(case((seconds <= bound, 1), else_=0)) for bound in buckets_s),
            )
            .where(Job.status.in_([s.value for s in FINAL]), begin.is_not(None), finish.is_not(None))
            .group_by(Job.kind)
        )
        with read_tx(self.engine) as session:
            rows = session.execute(query).all()
        return {row[0]: ([int(n) for n in row[3:]], float(row[2] or 0.0), int(row[1])) for row in rows}

    def recover_orphans(self) -> dict[str, int]:
        """Start-up recovery: ``processing`` jobs whose worker process (on this host) is gone are
        re-queued when the engine allows a retry and fewer than 2 attempts were made, else failed.
        Jobs held by live processes or other hosts are left alone. Returns ``{"requeued", "failed"}``."""
        counts = {"requeued": 0, "failed": 0}
        with read_tx(self.engine) as session:
            rows = session.execute(
                select(Job.id, Job.kind, Job.worker_id, Job.attempts).where(Job.status == JobStatus.processing.value)
            ).all()
        host = store.this_host()
        for job_id, kind, worker_id, attempts in rows:
            if worker_id:
                worker_host, _, pid = worker_id.rpartition(":")
                if worker_host != host or (pid.isdigit() and store.pid_alive(int(pid))):
                    continue
            new = store.requeue_or_fail(
                self.engine,
                self.files_dir,
                job_id,
                worker_id,
                retry=retry_allowed(kind, attempts),
                error_type="WorkerLost",
                message="the server stopped while this job was running",
            )
            if new is JobStatus.queued:
                counts["requeued"] += 1
            elif new is JobStatus.failed:
                counts["failed"] += 1
        if any(counts.values()):
            log.warning("recovered jobs left processing", **counts)
        return counts

    # ------------------------------------------------------------------ API keys
    def create_key(self, name: str) -> tuple[str, KeyView]:
        """Create an API key; returns ``(secret, key)``. The secret is shown only here: only its
        SHA-256 and its first 12 characters (``prefix``) are stored."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError("key name must be 1-200 characters")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(8),
            name=name,
            prefix=secret[:12],
            sha256=hashlib.sha256(secret.encode()).hexdigest(),
            created_at=utcnow(),
        )
        with write_tx(self.engine) as session:
            session.add(key)
        return secret, _key_view(key)

    def list_keys(self) -> list[KeyView]:
        with read_tx(self.engine) as session:
            return [_key_view(k) for k in session.scalars(select(ApiKey).order_by(ApiKey.created_at))]

    def revoke_key(self, key_id: str) -> KeyView:
        """Revoke a key (idempotent). Raises KeyError for an unknown id."""
        with write_tx(self.engine) as session:
            key = session.get(ApiKey, key_id)
            if key is None:
                raise KeyError(f"no API key {key_id}")
            if key.revoked_at is None:
                key.revoked_at = utcnow()
            return _key_view(key)

    def verify_key(self, secret: str) -> KeyView | None:
        """The key whose secret this is, or None if unknown or revoked."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        with read_tx(self.engine) as session:
            key = session.scalar(select(ApiKey).where(ApiKey.sha256 == digest))
            if key is None or not hmac.compare_digest(key.sha256, digest) or key.revoked_at is not None:
                return None
            return _key_view(key)


def retry_allowed(kind: str, attempts: int) -> bool:
    """Whether a job whose worker died may run again: the engine allows it and < 2 attempts were made."""
    try:
        spec = registry.get_engine(kind)
    except Exception:
        return False
    return bool(spec.retry_on_crash) and attempts < 2


def _safe_upload_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:200]
    return cleaned or "upload"


def _encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(job_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        return datetime.fromisoformat(created), uuid.UUID(job_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise ValueError("invalid cursor") from None
