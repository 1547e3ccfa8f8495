"""Batches: up to ``max_batch_jobs`` jobs of any engines submitted together (``POST /v1/batches``).

Every item is validated before any job exists (by the caller, with the same path as a single submit); then
:meth:`Batches.submit` creates the batch row and every job (with its first event and its input files) in one
transaction: either all exist or none. A batch's ``webhook`` is each job's unless the item names its own, and
the :class:`~cadenza.jobs.webhooks.WebhookDispatcher` also sends ``batch.completed`` once when every job is final.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenza.db.models import Batch, Job, utcnow
from cadenza.db.session import read_tx, write_tx
from cadenza.jobs import store
from cadenza.jobs.options import JobOptions
from cadenza.jobs.views import (
    FINAL,
    BatchJobView,
    BatchNotFound,
    BatchView,
    IdempotencyConflict,
    JobStatus,
)

if TYPE_CHECKING:
    from cadenza.jobs.service import JobService, StagedInput


@dataclass
class BatchItem:
    """One validated job of a batch: ``params`` (JSON-able, validated), its ``inputs`` (uploads by reference,
    ``shared``) and its job options."""

    kind: str
    params: dict[str, Any]
    inputs: dict[str, StagedInput] = field(default_factory=dict)
    options: JobOptions = field(default_factory=JobOptions)


class Batches:
    """Batches of one :class:`~cadenza.jobs.service.JobService` (``service.batches``)."""

    def __init__(self, service: JobService) -> None:
        self.service = service

    def submit(
        self,
        items: list[BatchItem],
        *,
        owner: str | None = None,
        idempotency_key: str | None = None,
        options: JobOptions | None = None,
    ) -> tuple[BatchView, bool]:
        """Create the batch and all its jobs in one transaction; returns ``(batch, created)``. With
        ``idempotency_key``, the same items and options by the same owner return the existing batch; different
        ones raise :class:`IdempotencyConflict`. Raises ``ValueError`` for an empty list or an unknown kind."""
        from cadenza.jobs.service import _job_row, _options_fingerprint, request_sha256

        service = self.service
        options = options or JobOptions()
        if not items:
            raise ValueError("a batch needs at least one job")
        rows: list[tuple[uuid.UUID, BatchItem, str, str | None, list[str] | None]] = []
        for item in items:
            if item.kind not in service.registry:
                raise ValueError(f"unknown job kind {item.kind!r}")
            opts = item.options
            webhook = opts.webhook or options.webhook
            events = opts.webhook_events if opts.webhook else options.webhook_events
            digest = request_sha256(
                item.kind,
                item.params,
                {n: str(i.info.get("sha256", "")) for n, i in item.inputs.items()},
                _options_fingerprint(opts.priority, opts.metadata, webhook, events),
            )
            rows.append((uuid.uuid4(), item, digest, webhook, events))
        batch_digest = hashlib.sha256(
            json.dumps(
                {"jobs": [r[2] for r in rows], "options": options.model_dump(mode="json", exclude_defaults=True)},
                sort_keys=True,
            ).encode()
        ).hexdigest()
        scope = (owner or "-") if idempotency_key else None
        if idempotency_key:
            existing = self._find_idempotent(scope, idempotency_key, batch_digest)
            if existing is not None:
                return existing, False
        batch_id = uuid.uuid4()
        now = utcnow()
        folders: list[Path] = []
        try:
            with write_tx(service.engine) as session:
                session.add(
                    Batch(
                        id=batch_id,
                        owner=owner,
                        size=len(rows),
                        idempotency_key=idempotency_key,
                        idempotency_scope=scope,
                        request_sha256=batch_digest,
                        client_metadata=options.metadata,
                        webhook_url=options.webhook,
                        webhook_events=options.webhook_events,
                        created_at=now,
                    )
                )
                session.flush()
                for index, (job_id, item, digest, webhook, events) in enumerate(rows):
                    stored = None
                    if item.inputs:
                        folders.append(store.job_dir(service.files_dir, job_id))
                        stored = service._store_inputs(folders[-1], item.inputs)
                    session.add(
                        _job_row(
                            job_id,
                            item.kind,
                            item.params,
                            owner=owner,
                            priority=item.options.priority,
                            digest=digest,
                            stored=stored,
                            metadata=item.options.metadata,
                            webhook=webhook,
                            webhook_events=events,
                            batch_id=batch_id,
                            created_at=now + timedelta(microseconds=index),  # the batch's order, also in the queue
                        )
                    )
                session.flush()
                for job_id, *_ in rows:
                    store.append_event(session, job_id, "status", {"status": JobStatus.queued.value})
        except IntegrityError:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
            existing = self._find_idempotent(scope, idempotency_key, batch_digest) if idempotency_key else None
            if existing is None:
                raise
            return existing, False
        except BaseException:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        for job_id, *_ in rows:
            service._notify(job_id)
        return self.get(batch_id), True

    def _find_idempotent(self, scope: str | None, key: str | None, digest: str) -> BatchView | None:
        with read_tx(self.service.engine) as session:
            batch = session.scalar(select(Batch).where(Batch.idempotency_scope == scope, Batch.idempotency_key == key))
            if batch is None:
                return None
            if batch.request_sha256 != digest:
                raise IdempotencyConflict(
                    f"idempotency key {key!r} was already used for a different batch ({batch.id})"
                )
            return batch_view(session, batch)

    def _batch(self, session: Session, batch_id: uuid.UUID | str, owner: str | None) -> Batch:
        return store.owned(session, Batch, batch_id, owner, BatchNotFound, "batch")

    def get(self, batch_id: uuid.UUID | str, owner: str | None = None) -> BatchView:
        """The batch with its jobs' statuses. Raises BatchNotFound (unknown, or another owner's)."""
        with read_tx(self.service.engine) as session:
            return batch_view(session, self._batch(session, batch_id, owner))

    def list(self, owner: str | None = None, limit: int = 50) -> list[BatchView]:
        """The owner's (``None``: everyone's) latest batches, newest first."""
        query = select(Batch).order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit)
        if owner is not None:
            query = query.where(Batch.owner == owner)
        with read_tx(self.service.engine) as session:
            return [batch_view(session, batch) for batch in session.scalars(query)]

    def cancel(self, batch_id: uuid.UUID | str, owner: str | None = None) -> BatchView:
        """Cancel every queued and processing job of the batch (as :meth:`JobService.cancel`). Raises
        BatchNotFound."""
        view = self.get(batch_id, owner)
        self.service.cancel_many(owner, batch_id=view.id, limit=view.size)
        return self.get(view.id, owner)

    def mark_completed(self, session: Session, limit: int = 100) -> list[uuid.UUID]:
        """Set ``completed_at`` on open batches whose jobs are all final; returns their ids (the dispatcher
        sends their ``batch.completed`` webhook in the same transaction)."""
        open_ids = list(session.scalars(select(Batch.id).where(Batch.completed_at.is_(None)).limit(limit)))
        done: list[uuid.UUID] = []
        for batch_id in open_ids:
            pending = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.batch_id == batch_id, Job.status.notin_([s.value for s in FINAL]))
            )
            if pending:
                continue
            last = session.scalar(select(func.max(Job.completed_at)).where(Job.batch_id == batch_id)) or utcnow()
            changed = session.execute(
                update(Batch)
                .where(Batch.id == batch_id, Batch.completed_at.is_(None))
                .values(completed_at=last)
                .execution_options(synchronize_session=False)
            ).rowcount
            if changed == 1:
                done.append(batch_id)
        return done

    def prune(self) -> int:
        """Delete completed batches none of whose jobs exist any more (retention removed them); returns how
        many."""
        with write_tx(self.service.engine) as session:
            ids = list(
                session.scalars(
                    select(Batch.id)
                    .where(Batch.completed_at.is_not(None))
                    .where(~select(Job.id).where(Job.batch_id == Batch.id).exists())
                    .limit(500)
                )
            )
            if ids:  # their deliveries go with the delivery retention (JobService.prune)
                session.execute(delete(Batch).where(Batch.id.in_(ids)))
        return len(ids)


def batch_view(session: Session, batch: Batch) -> BatchView:
    """The view of a batch row (one query for its jobs)."""
    rows = session.execute(
        select(Job.id, Job.kind, Job.status, Job.progress, Job.sequence, Job.created_at, Job.completed_at)
        .where(Job.batch_id == batch.id)
        .order_by(Job.created_at, Job.id)
    ).all()
    counts = {status.value: 0 for status in JobStatus}
    jobs = []
    for index, row in enumerate(rows):
        counts[row.status] += 1
        progress = 100.0 if JobStatus(row.status) in FINAL else float(row.progress)
        jobs.append(BatchJobView(index=index, id=row.id, kind=row.kind, status=row.status, progress=progress))
    final = all(JobStatus(j.status) in FINAL for j in jobs)
    return BatchView(
        id=batch.id,
        status="completed" if final else "processing",
        size=batch.size,
        counts=counts,
        progress=round(sum(j.progress for j in jobs) / len(jobs), 2) if jobs else 100.0,
        sequence=sum(int(r.sequence) for r in rows),
        owner=batch.owner,
        metadata=batch.client_metadata,
        webhook=batch.webhook_url,
        webhook_events_filter=batch.webhook_events,
        created_at=batch.created_at,
        completed_at=(batch.completed_at or max((r.completed_at for r in rows if r.completed_at), default=None))
        if final
        else None,
        jobs=jobs,
        url=f"/v1/batches/{batch.id}",
    )
