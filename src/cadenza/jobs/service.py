"""``JobService``: the job layer's API for the HTTP layer and the CLI (submit, read, cancel, wait,
uploads, retention, lease sweeping); API keys are :class:`cadenza.jobs.keys.ApiKeys` (``service.keys``).

It never runs a model: ``submit`` stores a ``queued`` row (and its first event) and tells its listeners
(the executor) about the new job; executors (:mod:`cadenza.jobs.pool`) run it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenza.db.models import Job, JobEvent, JobOutput, Upload, WebhookAttempt, WebhookDelivery, utcnow
from cadenza.db.session import check_schema, make_engine, read_tx, upgrade_database, write_tx
from cadenza.engines import registry
from cadenza.jobs import store
from cadenza.jobs.batches import Batches
from cadenza.jobs.estimates import Estimator
from cadenza.jobs.keys import ApiKeys
from cadenza.jobs.views import (
    FINAL,
    IdempotencyConflict,
    JobEventView,
    JobGone,
    JobNotFound,
    JobNotReady,
    JobNotRetryable,
    JobStatus,
    JobView,
    OutputNotFound,
    OutputView,
    UploadNotFound,
    UploadView,
)
from cadenza.settings import Settings

log = structlog.get_logger(__name__)

OUTPUT_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$")
"""Output (download) names: letters, digits, ``._-``, not starting with a dot, at most 255 characters."""

MAX_LIST_LIMIT = 500
UPLOADS_DIR = "uploads"
SCRATCH_DIR = "tmp"  # files built for one response (archives), removed once sent
"""``<files_dir>/uploads/``: streamed uploads (``*.part`` while they arrive) and ``POST /v1/uploads`` files."""
STALE_PART_S = 600.0
"""A ``*.part`` file not written to for this long belongs to an interrupted upload and is removed."""
UPLOAD_ID_RE = re.compile(r"^upl_[0-9a-f]{32}$")
WAIT_POLL_MIN_S = 0.02
WAIT_POLL_FAST_S = 1.0
WAIT_POLL_MAX_S = 0.2
"""``wait()`` polls every 20 ms for the first second (short jobs, e.g. a 4-bar drums job, return at
once), then backs off ×1.5 per poll to every 200 ms."""


def request_sha256(
    kind: str, params: dict[str, Any], input_sha256: dict[str, str] | None, options: dict[str, Any] | None = None
) -> str:
    """Canonical hash of a request (kind, params, each input file's SHA-256 and the job options that differ from
    their defaults), compared for idempotent repeats."""
    request: dict[str, Any] = {"kind": kind, "params": params, "inputs": input_sha256 or {}}
    if options:
        request["options"] = options
    payload = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class StagedInput:
    """A job's input file before the job exists: ``path`` (its extension is kept), ``info`` (``filename``,
    ``size_bytes``, ``sha256`` and the probe's facts). ``shared``: the file is an upload that other jobs
    may use too, so it is linked or copied into the job instead of moved."""

    path: Path
    info: dict[str, Any] = field(default_factory=dict)
    shared: bool = False


class JobService:
    """Jobs, their events, files and uploads, backed by the database at ``settings.database_url``.

    Construction creates the engine and ``settings.files_dir``; with ``migrate`` (the server and the
    CLI's own commands) it applies the Alembic migrations, else (``cadenza worker``) it only checks
    that the schema is current (raises SchemaOutdated), so many workers starting together never race on
    migrations. Thread-safe; one instance per process.
    """

    def __init__(self, settings: Settings, *, migrate: bool = True) -> None:
        self.settings = settings
        self.registry = registry.of(settings)
        self.files_dir = Path(settings.files_dir)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.database_url)
        if migrate:
            upgrade_database(self.engine)
        else:
            check_schema(self.engine)
        self.keys = ApiKeys(self.engine)
        self.batches = Batches(self)
        self._listeners: list[Callable[[uuid.UUID], None]] = []
        self._listeners_lock = threading.Lock()
        # job id → the (loop, event) of each wait() on it, so a change wakes only that job's waiters
        self._waiters: dict[uuid.UUID, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._waiters_lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing
    def add_submit_listener(self, callback: Callable[[uuid.UUID], None]) -> None:
        """Call ``callback(job_id)`` after each submission (the executor dispatches the job)."""
        with self._listeners_lock:
            self._listeners.append(callback)

    def remove_submit_listener(self, callback: Callable[[uuid.UUID], None]) -> None:
        with self._listeners_lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def job_changed(self, job_id: uuid.UUID | None = None) -> None:
        """Wake the :meth:`wait` calls on ``job_id`` (all of them for None) now (thread-safe): an executor that
        learns that a job changed (the local pool hears it from its workers) calls this so waiters re-read at
        once instead of at their next poll."""
        with self._waiters_lock:
            if job_id is None:
                waiters = [w for group in self._waiters.values() for w in group]
            else:
                waiters = list(self._waiters.get(job_id, ()))
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: its waiter is gone
                loop.call_soon_threadsafe(event.set)

    def _notify(self, job_id: uuid.UUID) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback(job_id)
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
        return store.owned(session, Job, job_id, owner, JobNotFound, "job")

    def _outputs(self, session: Session, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[JobOutput]]:
        result: dict[uuid.UUID, list[JobOutput]] = {jid: [] for jid in job_ids}
        if job_ids:
            rows = session.scalars(select(JobOutput).where(JobOutput.job_id.in_(job_ids)).order_by(JobOutput.id))
            for row in rows:
                result[row.job_id].append(row)
        return result

    def _view(self, session: Session, job: Job, estimator: Estimator | None = None) -> JobView:
        view = store.to_view(job, self._outputs(session, [job.id])[job.id])
        return self._estimated(view, job, estimator or Estimator(session, self.settings.workers))

    @staticmethod
    def _estimated(view: JobView, job: Job, estimator: Estimator) -> JobView:
        if view.status not in (JobStatus.queued, JobStatus.processing):
            return view
        position, eta_s = estimator.of(job)
        return view.model_copy(update={"queue_position": position, "eta_s": eta_s})

    # ------------------------------------------------------------------ jobs
    def submit(
        self,
        kind: str,
        params: dict[str, Any],
        *,
        owner: str | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
        inputs: dict[str, StagedInput] | None = None,
        metadata: dict[str, Any] | None = None,
        retry_of: uuid.UUID | None = None,
        webhook: str | None = None,
        webhook_events: list[str] | None = None,
    ) -> tuple[JobView, bool]:
        """Store a ``queued`` job and its first event (sequence 1); returns ``(job, created)``.

        ``params`` must be the JSON-able, already validated request. ``inputs`` (by declared input name)
        are moved (or, ``shared``, linked/copied) into ``<files_dir>/<job_id>/.upload/<name><ext>`` and
        reach the engine as ``RunContext.inputs``; the service owns non-shared staged files from here:
        when no job is created they are deleted. With ``idempotency_key``, a repeat of the same kind +
        params + input SHA-256s + options (``priority``, ``metadata``, ``webhook``) by the same owner returns the
        existing job and ``created=False``; ``webhook`` (a URL checked by :mod:`cadenza.jobs.urls`) is told about
        ``webhook_events`` (default ``["completed"]``) by the :class:`~cadenza.jobs.webhooks.WebhookDispatcher`;
        different ones raise :class:`IdempotencyConflict`. Raises ``ValueError`` for an unknown kind.
        """
        inputs = dict(inputs or {})
        try:
            if kind not in self.registry:
                raise ValueError(f"unknown job kind {kind!r}")
            if webhook is not None and not webhook_events:
                webhook_events = ["completed"]
            options = _options_fingerprint(priority, metadata, webhook, webhook_events)
            digest = request_sha256(
                kind, params, {n: str(i.info.get("sha256", "")) for n, i in inputs.items()}, options
            )
            scope = (owner or "-") if idempotency_key else None
            if idempotency_key:
                existing = self._find_idempotent(scope, idempotency_key, kind, digest)
                if existing is not None:
                    return existing, False
            job_id = uuid.uuid4()
            folder = store.job_dir(self.files_dir, job_id)
            stored: dict[str, Any] | None = None
            try:
                with write_tx(self.engine) as session:
                    if inputs:
                        stored = self._store_inputs(folder, inputs)
                        inputs = {}
                    session.add(
                        _job_row(
                            job_id,
                            kind,
                            params,
                            owner=owner,
                            priority=priority,
                            idempotency_key=idempotency_key,
                            scope=scope,
                            digest=digest,
                            stored=stored,
                            metadata=metadata,
                            retry_of=retry_of,
                            webhook=webhook,
                            webhook_events=webhook_events,
                        )
                    )
                    session.flush()
                    store.append_event(session, job_id, "status", {"status": JobStatus.queued.value})
                    if retry_of is not None:
                        session.execute(update(Job).where(Job.id == retry_of).values(retried_by=job_id))
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
            for staged in inputs.values():
                if not staged.shared:
                    Path(staged.path).unlink(missing_ok=True)
        self._notify(job_id)
        log.debug("job stored", job_id=str(job_id), kind=kind, owner=owner, priority=priority)
        return self.get(job_id), True

    @staticmethod
    def _store_inputs(folder: Path, inputs: dict[str, StagedInput]) -> dict[str, Any]:
        """Move/link each staged input into ``folder/.upload/<name><ext>``; returns the ``inputs`` column."""
        target = folder / store.UPLOAD_DIR
        target.mkdir(parents=True)
        stored: dict[str, Any] = {}
        for name, staged in inputs.items():
            source = Path(staged.path)
            stored_as = _safe_upload_name(name) + _extension(source.name.removesuffix(".part"))
            if staged.shared:
                try:
                    os.link(source, target / stored_as)  # the same bytes, no copy, on one file system
                except OSError:
                    shutil.copyfile(source, target / stored_as)
            else:
                shutil.move(str(source), target / stored_as)
            stored[name] = {**staged.info, "stored_as": stored_as}
        return stored

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

    def status(self, job_id: uuid.UUID, owner: str | None = None) -> JobStatus:
        """The job's status alone: one row read, no outputs, no queue estimate (what :meth:`wait` re-reads).
        Raises JobNotFound."""
        with read_tx(self.engine) as session:
            return JobStatus(self._job(session, job_id, owner).status)

    def list(
        self,
        owner: str | None = None,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        batch_id: uuid.UUID | None = None,
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
        if batch_id is not None:
            query = query.where(Job.batch_id == batch_id)
        if cursor:
            created, last_id = _decode_cursor(cursor)
            query = query.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < last_id)))
        query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
        with read_tx(self.engine) as session:
            jobs = list(session.scalars(query))
            more = len(jobs) > limit
            jobs = jobs[:limit]
            outputs = self._outputs(session, [j.id for j in jobs])
            estimator = Estimator(session, self.settings.workers)
            views = [self._estimated(store.to_view(j, outputs[j.id]), j, estimator) for j in jobs]
        next_cursor = _encode_cursor(jobs[-1].created_at, jobs[-1].id) if more and jobs else None
        return views, next_cursor

    def retry(self, job_id: uuid.UUID, owner: str | None = None) -> JobView:
        """A new queued job with the kind, params, options and inputs of a failed or cancelled one, linked both
        ways (``retry_of`` / ``retried_by``). A failed or cancelled job's input files were removed with it, so
        each input comes back from its upload (``upload_id``) when that upload still exists. Raises
        JobNotFound, JobNotRetryable (not failed or cancelled; an input that is gone)."""
        with read_tx(self.engine) as session:
            job = self._job(session, job_id, owner)
            status, kind, params = JobStatus(job.status), job.kind, dict(job.params)
            priority, metadata, job_owner, stored = job.priority, job.client_metadata, job.owner, job.inputs
            webhook, webhook_events = job.webhook_url, job.webhook_events
        if status not in (JobStatus.failed, JobStatus.cancelled):
            raise JobNotRetryable(f"job {job_id} is {status.value}; only failed or cancelled jobs are retried")
        inputs: dict[str, StagedInput] = {}
        for name, info in (stored or {}).items():
            kept = store.job_dir(self.files_dir, job_id) / store.UPLOAD_DIR / str(info.get("stored_as", ""))
            facts = {k: v for k, v in info.items() if k != "stored_as"}
            if info.get("stored_as") and kept.is_file():
                inputs[name] = StagedInput(kept, facts, shared=True)
                continue
            upload_id = info.get("upload_id")
            try:
                if upload_id is None:
                    raise UploadNotFound("it was sent with the job, not as an upload")
                _, path = self.get_upload(str(upload_id), job_owner)
            except UploadNotFound as exc:
                raise JobNotRetryable(
                    f"job {job_id}'s input {name!r} is gone ({exc}); submit the request again with the file"
                ) from None
            inputs[name] = StagedInput(path, facts, shared=True)
        view, _ = self.submit(
            kind,
            params,
            owner=job_owner,
            priority=priority,
            metadata=metadata,
            inputs=inputs,
            retry_of=job_id,
            webhook=webhook,
            webhook_events=webhook_events,
        )
        return view

    def cancel_many(
        self,
        owner: str | None,
        *,
        status: JobStatus | None = None,
        kind: str | None = None,
        batch_id: uuid.UUID | None = None,
        limit: int = 1000,
    ) -> list[uuid.UUID]:
        """Cancel the owner's (``None``: everyone's) queued and processing jobs matching ``status``, ``kind`` and
        ``batch_id``, at most ``limit`` of them, oldest first; returns their ids (see :meth:`cancel`)."""
        wanted = [status] if status is not None else [JobStatus.queued, JobStatus.processing]
        query = select(Job.id).where(Job.status.in_([s.value for s in wanted if s not in FINAL]))
        if owner is not None:
            query = query.where(Job.owner == owner)
        if kind is not None:
            query = query.where(Job.kind == kind)
        if batch_id is not None:
            query = query.where(Job.batch_id == batch_id)
        with read_tx(self.engine) as session:
            ids = list(session.scalars(query.order_by(Job.created_at, Job.id).limit(limit)))
        for job_id in ids:
            self.cancel(job_id, owner)
        return ids

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
            row = session.execute(select(Job.status, Job.owner).where(Job.id == job_id)).one_or_none()
        if row is None or (owner is not None and row.owner != owner):  # as store.owned: another's job is unknown
            raise JobNotFound(f"no job {job_id}")
        return JobStatus(row.status)

    async def wait(
        self, job_id: uuid.UUID, owner: str | None = None, timeout_s: float = 0, *, until_status_change: bool = False
    ) -> JobView:
        """Return the job once it is final (or, with ``until_status_change``, once its status differs from
        the status it had when the wait began) or ``timeout_s`` passed. Re-reads the status alone
        (:meth:`status`; the whole view once, at the end) off the event loop whenever the executor reports a
        change (:meth:`job_changed`) and otherwise polls (workers of other processes or hosts may have no
        channel to this one): every :data:`WAIT_POLL_MIN_S` for the
        first :data:`WAIT_POLL_FAST_S`, then backing off to :data:`WAIT_POLL_MAX_S`, so a long wait costs a
        few queries per second, not 50. Raises JobNotFound."""
        start = time.monotonic()
        deadline = start + max(0.0, timeout_s)
        interval_s = WAIT_POLL_MIN_S
        first: JobStatus | None = None
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._waiters_lock:
            self._waiters.setdefault(job_id, set()).add(waiter)
        try:
            while True:
                waiter[1].clear()
                status = await asyncio.to_thread(self.status, job_id, owner)
                first = first or status
                now = time.monotonic()
                if status in FINAL or (until_status_change and status is not first) or now >= deadline:
                    return await asyncio.to_thread(self.get, job_id, owner)
                if now - start >= WAIT_POLL_FAST_S:
                    interval_s = min(WAIT_POLL_MAX_S, interval_s * 1.5)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter[1].wait(), min(interval_s, max(0.0, deadline - now)))
        finally:
            with self._waiters_lock:
                group = self._waiters.get(job_id, set())
                group.discard(waiter)
                if not group:
                    self._waiters.pop(job_id, None)

    def output_file(self, job_id: uuid.UUID, owner: str | None, name: str) -> tuple[OutputView, Path]:
        """The output ``name`` of a completed job and its path on disk.

        Raises JobNotFound, OutputNotFound (unknown or malformed name), JobNotReady (queued or
        processing), JobGone (failed, cancelled, or its file was pruned).
        """
        with read_tx(self.engine) as session:
            job = self._completed_job(session, job_id, owner)
            if not OUTPUT_NAME_RE.fullmatch(name):
                raise OutputNotFound(f"job {job.id} has no output {name!r}")
            row = session.scalar(select(JobOutput).where(JobOutput.job_id == job.id, JobOutput.name == name))
            if row is None:
                raise OutputNotFound(f"job {job.id} has no output {name!r}")
            return OutputView.of(row, job.id, job.kind), self._output_path(job.id, row)

    def output_files(self, job_id: uuid.UUID, owner: str | None) -> tuple[str, list[tuple[OutputView, Path]]]:
        """The kind of a completed job and every output with its path, in one read. Raises JobNotFound,
        JobNotReady (queued or processing), JobGone (failed, cancelled, or a file was pruned)."""
        with read_tx(self.engine) as session:
            job = self._completed_job(session, job_id, owner)
            rows = self._outputs(session, [job.id])[job.id]
            return job.kind, [(OutputView.of(row, job.id, job.kind), self._output_path(job.id, row)) for row in rows]

    def _completed_job(self, session: Session, job_id: uuid.UUID, owner: str | None) -> Job:
        job = self._job(session, job_id, owner)
        status = JobStatus(job.status)
        if status in (JobStatus.queued, JobStatus.processing):
            raise JobNotReady(f"job {job.id} is {status.value}")
        if status is not JobStatus.completed:
            raise JobGone(f"job {job.id} is {status.value}; it has no files")
        return job

    def _output_path(self, job_id: uuid.UUID, row: JobOutput) -> Path:
        """The stored file of an output row, inside the job's folder. Raises JobGone when it is not there."""
        folder = store.job_dir(self.files_dir, job_id).resolve()
        path = (folder / row.path).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            raise JobGone(f"the file {row.name!r} of job {job_id} is no longer available")
        return path

    def scratch_path(self, suffix: str) -> Path:
        """A fresh ``<files_dir>/tmp/<uuid><suffix>`` path for a file built for one response (an archive);
        :meth:`sweep_partial_uploads` removes those left behind."""
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        return self.scratch_dir / f"{uuid.uuid4().hex}{suffix}"

    def prune(self, now: datetime | None = None) -> dict[str, int]:
        """Retention: delete final jobs past retention (``retention_completed_h`` for completed,
        ``retention_failed_h`` for failed and cancelled; 0 keeps them) with their events, outputs and
        files; expired uploads; partial uploads of interrupted requests. Returns counts
        ``{"completed", "failed", "cancelled", "jobs"}`` (plus ``"uploads"``/``"partial_uploads"`` when any)."""
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
        batches = self.batches.prune()
        if batches:
            counts["batches"] = batches
        hours = self.settings.retention_failed_h  # finished deliveries are kept as long as failed jobs (0: always)
        deliveries = prune_deliveries(self.engine, now - timedelta(hours=hours)) if hours > 0 else 0
        if deliveries:
            counts["webhook_deliveries"] = deliveries
        uploads = self.prune_uploads(now)
        partial = self.sweep_partial_uploads()
        if uploads:
            counts["uploads"] = uploads
        if partial:
            counts["partial_uploads"] = partial
        if counts["jobs"] or uploads or partial:
            log.info("pruned", **counts)
        return counts

    # ------------------------------------------------------------------ uploads
    @property
    def uploads_dir(self) -> Path:
        return self.files_dir / UPLOADS_DIR

    @property
    def scratch_dir(self) -> Path:
        return self.files_dir / SCRATCH_DIR

    def staging_path(self, extension: str = "") -> Path:
        """A fresh ``<files_dir>/uploads/<uuid><ext>.part`` path for a file being received."""
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        return self.uploads_dir / f"{uuid.uuid4().hex}{_clean_extension(extension)}.part"

    def create_upload(
        self, staged: Path, *, filename: str, media_type: str, size_bytes: int, sha256: str, owner: str | None
    ) -> UploadView:
        """Keep the staged file as an upload (moved to ``uploads/<id><ext>``), owned by ``owner``, until
        ``retention_uploads_h`` (0: kept until deleted). The staged file is the service's from here."""
        upload_id = "upl_" + secrets.token_hex(16)
        extension = _extension(filename) or _extension(Path(staged).name.removesuffix(".part"))
        now = utcnow()
        hours = self.settings.retention_uploads_h
        row = Upload(
            id=upload_id,
            owner=owner,
            filename=filename[:255] or "upload",
            extension=extension,
            media_type=media_type[:100],
            size_bytes=size_bytes,
            sha256=sha256,
            created_at=now,
            expires_at=now + timedelta(hours=hours) if hours > 0 else None,
        )
        dest = self.uploads_dir / f"{upload_id}{extension}"
        try:
            shutil.move(str(staged), dest)
            with write_tx(self.engine) as session:
                session.add(row)
        except BaseException:
            dest.unlink(missing_ok=True)
            Path(staged).unlink(missing_ok=True)
            raise
        return UploadView.model_validate(row)

    def get_upload(self, upload_id: str, owner: str | None = None) -> tuple[UploadView, Path]:
        """The upload and its file. Raises UploadNotFound (unknown, expired, another owner's, or its file gone)."""
        if not UPLOAD_ID_RE.fullmatch(str(upload_id)):
            raise UploadNotFound(f"no upload {upload_id!r}")
        with read_tx(self.engine) as session:
            row = session.get(Upload, upload_id)
            if row is None or (owner is not None and row.owner != owner):
                raise UploadNotFound(f"no upload {upload_id!r}")
            if row.expires_at is not None and row.expires_at <= utcnow():
                raise UploadNotFound(f"upload {upload_id!r} expired")
            view, path = UploadView.model_validate(row), self.uploads_dir / f"{row.id}{row.extension}"
        if not path.is_file():
            raise UploadNotFound(f"the file of upload {upload_id!r} is gone")
        return view, path

    def delete_upload(self, upload_id: str, owner: str | None = None) -> None:
        """Delete an upload and its file (jobs made from it keep their own copy). Raises UploadNotFound."""
        view, path = self.get_upload(upload_id, owner)
        with write_tx(self.engine) as session:
            session.execute(delete(Upload).where(Upload.id == view.id))
        path.unlink(missing_ok=True)

    def prune_uploads(self, now: datetime | None = None) -> int:
        """Delete uploads whose ``expires_at`` passed; returns how many."""
        now = now or utcnow()
        with write_tx(self.engine) as session:
            rows = session.execute(select(Upload.id, Upload.extension).where(Upload.expires_at <= now)).all()
            if rows:
                session.execute(delete(Upload).where(Upload.id.in_([r.id for r in rows])))
        for row in rows:
            (self.uploads_dir / f"{row.id}{row.extension}").unlink(missing_ok=True)
        return len(rows)

    def sweep_partial_uploads(self, max_age_s: float = STALE_PART_S) -> int:
        """Remove ``uploads/*.part`` and ``tmp/*`` files nobody wrote to for ``max_age_s`` (left by a killed
        server or an aborted request or response); returns how many."""
        removed = 0
        cutoff = time.time() - max_age_s
        left = [*self.uploads_dir.glob("*.part"), *self.scratch_dir.glob("*")]  # glob of a missing folder: []
        for path in left:
            try:
                if path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def queue_depth(self) -> int:
        """Number of queued jobs."""
        with read_tx(self.engine) as session:
            return session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.queued.value))

    def sweep_leases(self, now: datetime | None = None) -> dict[str, int]:
        """Jobs whose lease expired (their worker stopped heartbeating: it died, on any host, or lost the
        database) are re-queued when the engine allows a retry and fewer than 2 attempts were made, else
        failed with ``WorkerLost``. Safe to run from many processes at once (conditional updates).
        Returns ``{"requeued", "failed"}``."""
        counts = {"requeued": 0, "failed": 0}
        for job_id, kind, worker_id, attempts in store.expired_leases(self.engine, now):
            new = self._worker_lost(
                job_id, kind, worker_id, attempts, "the worker running this job stopped renewing its lease"
            )
            if new is not None:
                counts["requeued" if new is JobStatus.queued else "failed"] += 1
                log.warning("job lease expired", job_id=str(job_id), worker=worker_id, now=new.value)
        return counts

    def _worker_lost(
        self, job_id: uuid.UUID, kind: str, worker_id: str, attempts: int, message: str
    ) -> JobStatus | None:
        """Re-queue (engine allows, < 2 attempts) or fail with ``WorkerLost`` a job whose worker is gone; a
        re-queued job is dispatched again (the executor's listener)."""
        new = store.requeue_or_fail(
            self.engine,
            self.files_dir,
            job_id,
            worker_id,
            retry=retry_allowed(self.registry, kind, attempts),
            error_type="WorkerLost",
            message=message,
        )
        if new is JobStatus.queued:
            self._notify(job_id)
        return new

    def recover_orphans(self) -> dict[str, int]:
        """Start-up fast path: ``processing`` jobs whose worker process on this host is gone are handled
        at once, as an expired lease would be (re-queued or failed). Jobs of live processes and other
        hosts are left to their leases. Returns ``{"requeued", "failed"}``."""
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
            new = self._worker_lost(job_id, kind, worker_id, attempts, "the server stopped while this job was running")
            if new is JobStatus.queued:
                counts["requeued"] += 1
            elif new is JobStatus.failed:
                counts["failed"] += 1
        if any(counts.values()):
            log.warning("recovered jobs left processing", **counts)
        return counts


def prune_deliveries(engine: Any, before: datetime) -> int:
    """Delete webhook deliveries that finished (delivered, failed, gone) before ``before``, with their attempts;
    returns how many."""
    with write_tx(engine) as session:
        ids = list(
            session.scalars(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.status != "pending", WebhookDelivery.finished_at < before)
                .limit(1000)
            )
        )
        if ids:
            session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
            session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
    return len(ids)


def _options_fingerprint(
    priority: int, metadata: dict[str, Any] | None, webhook: str | None, webhook_events: list[str] | None
) -> dict[str, Any]:
    """The job options that differ from their defaults, as the idempotency fingerprint sees them."""
    options: dict[str, Any] = {"priority": priority, "metadata": metadata}
    if webhook is not None:
        options |= {"webhook": webhook, "webhook_events_filter": webhook_events}
    return {k: v for k, v in options.items() if v}


def _job_row(
    job_id: uuid.UUID,
    kind: str,
    params: dict[str, Any],
    *,
    owner: str | None,
    priority: int,
    digest: str,
    idempotency_key: str | None = None,
    scope: str | None = None,
    stored: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    retry_of: uuid.UUID | None = None,
    webhook: str | None = None,
    webhook_events: list[str] | None = None,
    batch_id: uuid.UUID | None = None,
    created_at: datetime | None = None,
) -> Job:
    """A new ``queued`` job row (its first event is appended after the row is flushed)."""
    return Job(
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
        inputs=stored,
        client_metadata=metadata,
        retry_of=retry_of,
        batch_id=batch_id,
        webhook_url=webhook,
        webhook_events=(webhook_events or ["completed"]) if webhook else None,
        webhook_sequence=0 if webhook else None,
        created_at=created_at or utcnow(),
    )


def retry_allowed(engines: registry.Registry, kind: str, attempts: int) -> bool:
    """Whether a job whose worker died may run again: the engine allows it and < 2 attempts were made."""
    try:
        spec = engines.get(kind)
    except Exception:
        return False
    return bool(spec.retry_on_crash) and attempts < 2


def _clean_extension(extension: str) -> str:
    extension = extension.lower()
    return extension if re.fullmatch(r"\.[a-z0-9]{1,10}", extension) else ""


def _extension(filename: str) -> str:
    """The lower-case extension of a client's file name if it is a plain one (``.wav``), else ``""``."""
    return _clean_extension(Path(filename.replace("\\", "/")).suffix)


def _safe_upload_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:200]
    return cleaned or "upload"


def _encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(job_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """``(created_at, id)`` of a cursor; raises ValueError unless it holds a timezone-aware time that
    SQL can store (year 1970-9998 in UTC) and a UUID."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("naive time")
        when = when.astimezone(UTC)
        if not 1970 <= when.year <= 9998:
            raise ValueError("time out of range")
        return when, uuid.UUID(job_id)
    except (ValueError, TypeError, AttributeError, OverflowError, binascii.Error, json.JSONDecodeError):
        raise ValueError("invalid cursor") from None
