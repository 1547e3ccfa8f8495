"""Database primitives shared by the service (API process), the supervisor and the worker processes.

Every change of a job that clients may observe appends a :class:`~cadenza.db.models.JobEvent` with the
job's next ``sequence`` number in the same transaction (``UPDATE jobs SET sequence = sequence + 1``
holds the row's write lock until commit, so numbers are gap-free and monotonic per job).
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from cadenza.db.models import Job, JobEvent, JobOutput, utcnow
from cadenza.db.session import write_tx
from cadenza.jobs.views import JobError, JobStatus, JobView, OutputView

UPLOAD_DIR = ".upload"
"""Sub-folder of a job's folder holding its uploaded input; output names may not start with a dot."""


def job_dir(files_dir: Path, job_id: uuid.UUID) -> Path:
    """``<files_dir>/<job_id>``: the job's folder (``.upload/`` inputs, ``attempt-<n>/`` outputs)."""
    return Path(files_dir) / str(job_id)


def attempt_dir(files_dir: Path, job_id: uuid.UUID, attempt: int) -> Path:
    """``<files_dir>/<job_id>/attempt-<n>``: the engine's ``RunContext.workdir`` for attempt ``n``.

    Each attempt writes into its own folder, so a worker that stalled past its lease and wakes up
    after another worker took the job over can neither overwrite nor delete the new attempt's files."""
    return job_dir(files_dir, job_id) / f"attempt-{attempt}"


def remove_job_files(files_dir: Path, job_id: uuid.UUID, *, keep_upload: bool = False) -> None:
    """Remove a job's files (all of them, or all but the uploaded input). Missing folders are fine."""
    folder = job_dir(files_dir, job_id)
    if not keep_upload:
        shutil.rmtree(folder, ignore_errors=True)
        return
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name == UPLOAD_DIR:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def this_host() -> str:
    return socket.gethostname()


def worker_id_for(pid: int) -> str:
    """Identity of a worker process stored on the jobs it runs: ``"<hostname>:<pid>"``."""
    return f"{this_host()}:{pid}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie — dead, not yet reaped — counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): trust kill(0)
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def owned(
    session: Session, model: type, key: uuid.UUID | str, owner: str | None, missing: type[Exception], label: str
) -> Any:
    """The row of ``model`` (a job, a batch) with id ``key`` if ``owner`` is None (admin, auth off) or owns it;
    else raises ``missing("no <label> <key>")`` (a 404: another owner's rows look unknown; a malformed id too)."""
    try:
        row = session.get(model, key if isinstance(key, uuid.UUID) else uuid.UUID(str(key)))
    except ValueError:
        raise missing(f"no {label} {key}") from None
    if row is None or (owner is not None and row.owner != owner):
        raise missing(f"no {label} {key}")
    return row


_JOBS = Job.__table__
# Built once: constructing a statement costs more than running it. Columns named in the execution parameters
# besides ``event_job_id`` are SET as well (SQLAlchemy Core: parameters of an UPDATE without .values() for them).
_BUMP_SEQUENCE = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("event_job_id", type_=_JOBS.c.id.type))
    .values(sequence=_JOBS.c.sequence + 1)
    .returning(_JOBS.c.sequence)
)
_INSERT_EVENT = insert(JobEvent.__table__)
_JOB_COLUMNS = frozenset(_JOBS.c.keys())


def append_event(
    session: Session, job_id: uuid.UUID, type_: str, data: dict[str, Any], *, values: dict[str, Any] | None = None
) -> int:
    """Bump the job's ``sequence`` (setting the ``jobs`` columns in ``values`` in the same ``UPDATE …
    RETURNING``) and insert an event with it; returns the new sequence number. Raises LookupError for a
    missing job and ValueError for a ``values`` key that is no ``jobs`` column. Both statements are prebuilt
    SQLAlchemy Core (no unit of work): events are a job's hottest writes."""
    if values and not values.keys() <= _JOB_COLUMNS:  # Core ignores parameters that name no column
        raise ValueError(f"not columns of jobs: {sorted(values.keys() - _JOB_COLUMNS)}")
    seq = session.execute(_BUMP_SEQUENCE, {"event_job_id": job_id, **(values or {})}).scalar()
    if seq is None:
        raise LookupError(f"job {job_id} does not exist")
    session.execute(
        _INSERT_EVENT, {"job_id": job_id, "sequence": seq, "type": type_, "data": data, "created_at": utcnow()}
    )
    return seq


def transition(
    session: Session,
    job_id: uuid.UUID,
    *,
    from_status: tuple[JobStatus, ...],
    to_status: JobStatus,
    values: dict[str, Any] | None = None,
    event: dict[str, Any] | None = None,
    worker_id: str | None = None,
) -> bool:
    """Conditionally move a job ``from_status`` → ``to_status`` (and, given ``worker_id``, only if that
    worker holds it), setting ``values`` and appending a ``status`` event. Returns False (nothing
    changed) when the condition did not hold: this is what makes claims and cancels race-free."""
    stmt = update(Job).where(Job.id == job_id, Job.status.in_([s.value for s in from_status]))
    if worker_id is not None:
        stmt = stmt.where(Job.worker_id == worker_id)
    stmt = stmt.values(status=to_status.value, **(values or {})).execution_options(synchronize_session=False)
    if session.execute(stmt).rowcount != 1:
        return False
    append_event(session, job_id, "status", {"status": to_status.value, **(event or {})})
    return True


@dataclass(frozen=True)
class ClaimedJob:
    id: uuid.UUID
    kind: str
    params: dict[str, Any]
    attempts: int
    inputs: dict[str, Any]

    def input_paths(self, files_dir: Path) -> dict[str, Path]:
        """Each declared input's stored file: ``<files_dir>/<id>/.upload/<stored_as>``."""
        folder = job_dir(files_dir, self.id) / UPLOAD_DIR
        return {name: folder / info["stored_as"] for name, info in self.inputs.items()}


def lease_until(lease_s: float) -> datetime:
    return utcnow() + timedelta(seconds=lease_s)


def claim_next(engine: Engine, worker_id: str, lease_s: float = 30.0) -> ClaimedJob | None:
    """Claim the next queued job — highest ``priority`` first, then oldest — for ``worker_id``.

    Race-free across processes and machines: the candidate is taken with ``SELECT … FOR UPDATE SKIP
    LOCKED`` on PostgreSQL (inside ``BEGIN IMMEDIATE`` on SQLite), and the claim itself is the
    conditional ``UPDATE … WHERE status='queued'`` whose row count is checked. The job's lease runs
    for ``lease_s`` seconds; the worker renews it (:func:`renew_lease`).
    """
    return _claim(engine, worker_id, lease_s, None)


def claim(engine: Engine, worker_id: str, job_id: uuid.UUID, lease_s: float = 30.0) -> ClaimedJob | None:
    """Claim the queued job ``job_id`` for ``worker_id`` (a conditional update); None when it is not
    queued any more (taken by another worker, cancelled, deleted), so a duplicated dispatch never runs
    a job twice."""
    return _claim(engine, worker_id, lease_s, job_id)


def _claim(engine: Engine, worker_id: str, lease_s: float, wanted: uuid.UUID | None) -> ClaimedJob | None:
    postgres = engine.dialect.name == "postgresql"
    for _ in range(10 if wanted is None else 1):
        with write_tx(engine) as session:
            query = select(Job.id).where(Job.status == JobStatus.queued.value)
            if wanted is not None:
                query = query.where(Job.id == wanted)
            query = query.order_by(Job.priority.desc(), Job.created_at, Job.id).limit(1)
            if postgres:
                query = query.with_for_update(skip_locked=True)
            job_id = session.scalar(query)
            if job_id is None:
                return None
            claimed = transition(
                session,
                job_id,
                from_status=(JobStatus.queued,),
                to_status=JobStatus.processing,
                values={
                    "started_at": utcnow(),
                    "attempts": Job.attempts + 1,
                    "worker_id": worker_id,
                    "progress": 0.0,
                    "stage": None,
                    "lease_expires_at": lease_until(lease_s),
                },
                event={"worker": worker_id},
            )
            if not claimed:
                continue
            row = session.execute(select(Job.kind, Job.params, Job.attempts, Job.inputs).where(Job.id == job_id)).one()
            return ClaimedJob(job_id, row.kind, dict(row.params), row.attempts, dict(row.inputs or {}))
    return None


def renew_lease(engine: Engine, job_id: uuid.UUID, worker_id: str, lease_s: float) -> bool:
    """Extend the lease of a processing job still held by ``worker_id``; False when it is not (any more)."""
    with write_tx(engine) as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.processing.value, Job.worker_id == worker_id)
            .values(lease_expires_at=lease_until(lease_s))
            .execution_options(synchronize_session=False)
        )
    return result.rowcount == 1


def expired_leases(engine: Engine, now: datetime | None = None) -> list[tuple[uuid.UUID, str, str, int]]:
    """``(id, kind, worker_id, attempts)`` of processing jobs whose lease ran out before ``now``."""
    now = now or utcnow()
    with Session(engine) as session:
        rows = session.execute(
            select(Job.id, Job.kind, Job.worker_id, Job.attempts).where(
                Job.status == JobStatus.processing.value, Job.lease_expires_at < now
            )
        ).all()
    return [tuple(r) for r in rows]


def requeue_or_fail(
    engine: Engine,
    files_dir: Path,
    job_id: uuid.UUID,
    worker_id: str,
    *,
    retry: bool,
    error_type: str,
    message: str,
) -> JobStatus | None:
    """Handle a job whose worker is gone: back to ``queued`` (partial outputs removed, upload kept) if
    ``retry``, else ``failed`` with ``error_type``/``message`` and its files removed. Only acts while
    ``worker_id`` still holds the job; returns the new status or None when nothing changed."""
    if retry:
        done = _leave_processing(
            engine, files_dir, job_id, worker_id, JobStatus.queued, _REQUEUED, {"reason": message}, keep_upload=True
        )
    else:
        done = _leave_processing(
            engine,
            files_dir,
            job_id,
            worker_id,
            JobStatus.failed,
            {"completed_at": utcnow(), "error_type": error_type, "error_message": message, "stage": None},
            {"error": {"type": error_type, "message": message}},
        )
    if not done:
        return None
    return JobStatus.queued if retry else JobStatus.failed


def requeue_interrupted(engine: Engine, files_dir: Path, job_id: uuid.UUID, worker_id: str, reason: str) -> bool:
    """Put a job interrupted by a shutdown back in the queue without counting the attempt."""
    values = {**_REQUEUED, "attempts": Job.attempts - 1}
    return _leave_processing(
        engine, files_dir, job_id, worker_id, JobStatus.queued, values, {"reason": reason}, keep_upload=True
    )


def cancel_processing(engine: Engine, files_dir: Path, job_id: uuid.UUID, worker_id: str, reason: str) -> bool:
    """Mark a processing job whose worker was stopped ``cancelled`` and remove its files."""
    values = {"completed_at": utcnow(), "stage": None}
    return _leave_processing(engine, files_dir, job_id, worker_id, JobStatus.cancelled, values, {"reason": reason})


_REQUEUED: dict[str, Any] = {
    "worker_id": None,
    "started_at": None,
    "progress": 0.0,
    "stage": None,
    "lease_expires_at": None,
}
"""Column values of a processing job put back in the queue."""


def _leave_processing(
    engine: Engine,
    files_dir: Path,
    job_id: uuid.UUID,
    worker_id: str,
    to_status: JobStatus,
    values: dict[str, Any],
    event: dict[str, Any],
    *,
    keep_upload: bool = False,
) -> bool:
    """Move a ``processing`` job still held by ``worker_id`` to ``to_status`` (with ``values`` and an
    ``event``) and remove its files (all but the upload if ``keep_upload``); False if nothing changed."""
    with write_tx(engine) as session:
        done = transition(
            session,
            job_id,
            from_status=(JobStatus.processing,),
            to_status=to_status,
            values=values,
            event=event,
            worker_id=worker_id,
        )
    if done:
        remove_job_files(files_dir, job_id, keep_upload=keep_upload)
    return done


def processing_jobs(
    engine: Engine, worker_ids: list[str]
) -> list[tuple[uuid.UUID, str, str, datetime | None, datetime | None]]:
    """``(id, kind, worker_id, started_at, cancel_requested_at)`` of processing jobs held by ``worker_ids``."""
    if not worker_ids:
        return []
    with Session(engine) as session:
        rows = session.execute(
            select(Job.id, Job.kind, Job.worker_id, Job.started_at, Job.cancel_requested_at).where(
                Job.status == JobStatus.processing.value, Job.worker_id.in_(worker_ids)
            )
        ).all()
    return [tuple(r) for r in rows]


def duration_s(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def to_view(job: Job, outputs: list[JobOutput]) -> JobView:
    queue_end = job.started_at or (job.completed_at if job.status == JobStatus.cancelled.value else None)
    error = JobError(type=job.error_type, message=job.error_message or "") if job.error_type else None
    return JobView(
        id=job.id,
        kind=job.kind,
        status=JobStatus(job.status),
        params=job.params,
        progress=job.progress,
        stage=job.stage,
        sequence=job.sequence,
        owner=job.owner,
        priority=job.priority,
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        queue_duration_s=duration_s(job.created_at, queue_end),
        run_duration_s=duration_s(job.started_at, job.completed_at),
        error=error,
        outputs=[OutputView.of(o, job.id, job.kind) for o in outputs],
        result=job.result,
        inputs=job.inputs,
        metadata=job.client_metadata,
        retry_of=job.retry_of,
        retried_by=job.retried_by,
        batch_id=job.batch_id,
        webhook=job.webhook_url,
        webhook_events_filter=job.webhook_events,
    )


def delete_jobs(session: Session, job_ids: list[uuid.UUID]) -> None:
    """Delete jobs with their events and outputs (explicitly, so it does not rely on FK cascades). Their webhook
    deliveries stay until they are sent (a job deleted or pruned right after it finished still notifies); retention
    removes finished deliveries (:meth:`cadenza.jobs.service.JobService.prune`)."""
    if not job_ids:
        return
    session.execute(delete(JobEvent).where(JobEvent.job_id.in_(job_ids)))
    session.execute(delete(JobOutput).where(JobOutput.job_id.in_(job_ids)))
    session.execute(delete(Job).where(Job.id.in_(job_ids)))
