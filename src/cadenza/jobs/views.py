"""Plain Pydantic v2 views of jobs, events, outputs and API keys, and the job layer's errors."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class JobStatus(StrEnum):
    """``queued`` → ``processing`` → ``completed`` | ``failed`` | ``cancelled``."""

    queued = "queued"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


FINAL: frozenset[JobStatus] = frozenset({JobStatus.completed, JobStatus.failed, JobStatus.cancelled})


class OutputView(BaseModel):
    """One output file: ``size_bytes`` in bytes, ``sha256`` hex digest of its content; ``download_name``
    is the descriptive, unique name a download is saved under (``Content-Disposition``)."""

    name: str
    media_type: str
    size_bytes: int
    sha256: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    download_name: str = ""

    @classmethod
    def of(cls, row: Any, job_id: UUID, kind: str) -> OutputView:
        """The view of a ``JobOutput`` row: ``<download stem>_<first 8 hex of the job id><ext>``, the
        stem being the engine's (``Output.download_stem``) or ``<kind>_<name stem>``."""
        metadata = dict(row.meta or {})
        name = PurePosixPath(row.name)
        stem = metadata.pop("download_stem", None) or f"{kind}_{name.stem}"
        return cls(
            name=row.name,
            media_type=row.media_type,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            metadata=metadata,
            download_name=f"{stem}_{job_id.hex[:8]}{name.suffix}",
        )


class JobError(BaseModel):
    """Why a job failed: ``type`` is ``EngineInputError`` (user-facing message), an exception class
    name, ``WorkerCrashed`` or ``JobTimeout``."""

    type: str
    message: str


class JobView(BaseModel):
    """A job. ``progress`` in percent [0, 100]; ``sequence`` is the number of its latest event.

    ``queue_duration_s``: seconds from submission to start (to cancellation for a job cancelled while
    queued); None while queued. ``run_duration_s``: seconds from start to the end; None until then.
    ``result``: the engine's metadata plus ``warnings`` (list of str), set when completed.
    ``inputs``: the job's input files by declared name: ``filename``, ``size_bytes``, ``sha256``,
    ``upload_id`` (when sent by reference) and the engine probe's facts; None for a job without inputs.
    ``queue_position``: 1 = the next queued job to start (None unless queued). ``eta_s``: estimated
    seconds until it finishes, from recent run times of its kind (None when unknown or final; see
    :mod:`cadenza.jobs.estimates`). ``priority`` and ``metadata`` are the job-level options it was submitted
    with (:mod:`cadenza.jobs.options`). ``retry_of``: the failed or cancelled job this one retries;
    ``retried_by``: the latest retry of this one.
    """

    id: UUID
    kind: str
    status: JobStatus
    params: dict[str, Any]
    progress: float
    stage: str | None
    sequence: int
    owner: str | None
    priority: int
    attempts: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    queue_duration_s: float | None
    run_duration_s: float | None
    error: JobError | None
    outputs: list[OutputView]
    result: dict[str, Any] | None
    inputs: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    retry_of: UUID | None = None
    retried_by: UUID | None = None
    queue_position: int | None = None
    eta_s: float | None = None


class JobEventView(BaseModel):
    """One job event. ``data``: for ``status`` ``{"status", ...}``; for ``progress`` ``{"progress",
    "stage"}``; for ``output`` ``{"name", "media_type", "size_bytes", "sha256"}``."""

    sequence: int
    type: Literal["status", "progress", "output"]
    data: dict[str, Any]
    created_at: datetime


class KeyView(BaseModel):
    """An API key without its secret: ``prefix`` is the first characters of the secret, in clear."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class JobNotFound(LookupError):  # noqa: N818 - names fixed by the API contract
    """Unknown job id, or a job of another owner (API 404)."""


class OutputNotFound(LookupError):  # noqa: N818
    """The job has no output of that name (API 404)."""


class JobNotReady(RuntimeError):  # noqa: N818
    """Files were requested before the job completed (API 409)."""


class JobNotRetryable(RuntimeError):  # noqa: N818
    """A job that cannot be retried: not failed or cancelled, or its input files are gone (409)."""


class JobGone(RuntimeError):  # noqa: N818
    """The job failed or was cancelled, or its files were pruned (API 410)."""


class UploadNotFound(LookupError):  # noqa: N818
    """Unknown or expired upload id, or an upload of another owner (API 404 / 422 in a submit)."""


class UploadView(BaseModel):
    """A file uploaded once (``POST /v1/uploads``) and referenced by ``id`` in submits (read from its row)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    filename: str
    media_type: str
    size_bytes: int
    sha256: str
    created_at: datetime
    expires_at: datetime | None


class IdempotencyConflict(ValueError):  # noqa: N818
    """The idempotency key was used before with a different kind or params (API 422)."""
