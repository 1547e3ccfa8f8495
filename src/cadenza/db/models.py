"""SQLAlchemy 2 models of the job system.

Portable across SQLite and PostgreSQL: no dialect-specific types or SQL. Timestamps are stored as
naive UTC and returned as timezone-aware UTC (:class:`UTCDateTime`). The schema itself is created by
the Alembic migrations in ``cadenza/db/migrations`` (keep both in step).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.functions import FunctionElement


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes stored as naive UTC (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass timezone-aware UTC datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class epoch_s(FunctionElement[float]):  # noqa: N801 (an SQL function)
    """``epoch_s(column)``: seconds since 1970-01-01 of a :class:`UTCDateTime` column, for duration
    arithmetic in SQL. SQLite: ``julianday`` (millisecond resolution); PostgreSQL: ``EXTRACT(EPOCH …)``."""

    type = Float()
    name = "epoch_s"
    inherit_cache = True


@compiles(epoch_s, "sqlite")
def _epoch_s_sqlite(element: epoch_s, compiler: Any, **kw: Any) -> str:
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch_s, "postgresql")
def _epoch_s_postgresql(element: epoch_s, compiler: Any, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS DOUBLE PRECISION)"


class Base(DeclarativeBase):
    pass


class Job(Base):
    """One job. ``sequence`` is the number of the job's last event (events are numbered from 1).

    ``idempotency_scope`` is the owner (or ``"-"`` without one) when an idempotency key is set, so the
    unique constraint also holds for owner-less jobs (NULLs never collide in SQL unique constraints).
    ``worker_id`` is ``"<hostname>:<pid>"`` of the worker process running the job; ``lease_expires_at``
    is renewed by that worker's heartbeats while it runs. ``inputs`` maps each declared input name to
    its stored file (``stored_as`` under the job's ``.upload/`` folder), SHA-256, size and probe facts.
    """

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(200))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    idempotency_scope: Mapped[str | None] = mapped_column(String(64))
    request_sha256: Mapped[str] = mapped_column(String(64))
    input_name: Mapped[str | None] = mapped_column(String(255))  # unused since 0002: see ``inputs``
    inputs: Mapped[dict[str, Any] | None] = mapped_column("upload_info", JSON)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_type: Mapped[str | None] = mapped_column(String(128))
    error_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    client_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the job option ``metadata``
    retry_of: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the failed or cancelled job this one retries
    retried_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the latest retry of this job
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the batch it was submitted in
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_events: Mapped[list[str] | None] = mapped_column(JSON)
    # the last event sequence the webhook dispatcher looked at; NULL: no webhook, or every event handled
    webhook_sequence: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_jobs_idempotency"),
        Index("ix_jobs_claim", "status", "priority", "created_at"),
        Index("ix_jobs_owner_created", "owner", "created_at"),
        Index("ix_jobs_created", "created_at"),
        Index("ix_jobs_status_completed", "status", "completed_at"),
        Index("ix_jobs_lease", "status", "lease_expires_at"),
        Index("ix_jobs_batch", "batch_id"),
        Index("ix_jobs_webhook_sequence", "webhook_sequence"),
    )


class Batch(Base):
    """Jobs submitted together (``POST /v1/batches``); its ``webhook`` is each job's unless the job names its
    own, and also fires once (``batch.completed``) when every job is final (``notified_at``)."""

    __tablename__ = "batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    idempotency_scope: Mapped[str | None] = mapped_column(String(64))
    request_sha256: Mapped[str] = mapped_column(String(64))
    client_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    webhook_events: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the last job became final
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # batch.completed delivery created

    __table_args__ = (
        UniqueConstraint("idempotency_scope", "idempotency_key", name="uq_batches_idempotency"),
        Index("ix_batches_owner_created", "owner", "created_at"),
        Index("ix_batches_open", "completed_at"),
    )


class WebhookDelivery(Base):
    """One webhook message (Standard Webhooks: ``id`` is the ``webhook-id``, the same on every attempt) and
    its delivery state: ``pending`` (``next_attempt_at`` due), ``delivered``, ``failed`` (retries exhausted)
    or ``gone`` (the receiver answered 410)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    owner: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_job", "job_id"),
        Index("ix_webhook_deliveries_batch", "batch_id"),
    )


class WebhookAttempt(Base):
    """One try of a delivery: ``status_code`` (None when no answer), ``latency_ms``, ``error`` and the first
    bytes of the answer (``response_excerpt``)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(40), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(500))
    response_excerpt: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id"),)


class ServerSecret(Base):
    """Secrets the server generates once and shares between its processes (``webhook_secret``)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobEvent(Base):
    """One event of a job: ``type`` is ``status``, ``progress`` or ``output``; ``sequence`` is 1, 2, 3, …"""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("jobs.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("job_id", "sequence", name="uq_job_events_sequence"),)


class JobOutput(Base):
    """One file of a completed job, stored at ``<files_dir>/<job_id>/<path>``."""

    __tablename__ = "job_outputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1024))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)

    __table_args__ = (UniqueConstraint("job_id", "name", name="uq_job_outputs_name"),)


class ApiKey(Base):
    """An API key: only the SHA-256 of the secret and a short clear prefix are stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Upload(Base):
    """A file sent once with ``POST /v1/uploads`` and referenced by id in submits; stored at
    ``<files_dir>/uploads/<id><extension>``; removed by retention after ``expires_at``."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    extension: Mapped[str] = mapped_column(String(16))
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_uploads_expires", "expires_at"),)


__all__ = [
    "ApiKey",
    "Base",
    "Batch",
    "Job",
    "JobEvent",
    "JobOutput",
    "ServerSecret",
    "UTCDateTime",
    "Upload",
    "WebhookAttempt",
    "WebhookDelivery",
    "epoch_s",
    "utcnow",
]
