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


def download_name(stem: str, job_id: UUID, suffix: str) -> str:
    """A download's file name: ``<stem>_<first 8 hex of the job id><suffix>`` (``j-dilla_4bars_1a2b3c4d.mid``)."""
    return f"{stem}_{job_id.hex[:8]}{suffix}"


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
            download_name=download_name(stem, job_id, name.suffix),
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
    batch_id: UUID | None = None
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    queue_position: int | None = None
    eta_s: float | None = None


def job_links(view: JobView) -> dict[str, Any]:
    """The job view as JSON-able data plus its URLs (``url``, ``links``, each output's ``url``): what the API
    answers and what a webhook carries."""
    base = f"/v1/jobs/{view.id}"
    data: dict[str, Any] = view.model_dump(mode="json")
    data["outputs"] = [{**o, "url": f"{base}/files/{o['name']}"} for o in data["outputs"]]
    data["url"] = base
    data["links"] = {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"}
    return data


class BatchJobView(BaseModel):
    """One job of a batch, in submission order (``index``)."""

    index: int
    id: UUID
    kind: str
    status: JobStatus
    progress: float


_BATCH_ID = "0b7c6a52-3f1e-4b1a-9a57-6d1c0e2f9a10"
_JOB_IDS = ("6f1c2e1e-5a35-4a8e-9d7b-0b8b0f7c2a11", "9a0e3c55-1f7b-4d43-8f0e-2b5d1c7e4a22")
BATCH_EXAMPLE: dict[str, Any] = {
    "id": _BATCH_ID,
    "status": "processing",
    "size": 2,
    "counts": {"queued": 1, "processing": 0, "completed": 1, "failed": 0, "cancelled": 0},
    "progress": 50.0,
    "sequence": 5,
    "owner": None,
    "metadata": {"session": "beat-tape-3"},
    "webhook": "https://example.com/hooks/cadenza",
    "webhook_events_filter": ["completed"],
    "created_at": "2026-12-03T10:00:00Z",
    "completed_at": None,
    "jobs": [
        {"index": 0, "id": _JOB_IDS[0], "kind": "drums", "status": "completed", "progress": 100.0},
        {"index": 1, "id": _JOB_IDS[1], "kind": "drums", "status": "queued", "progress": 0.0},
    ],
    "url": f"/v1/batches/{_BATCH_ID}",
}
DELIVERY_EXAMPLE: dict[str, Any] = {
    "id": "msg_5b0f1e2d3c4b5a69788796a5b4c3d2e1",
    "type": "job.completed",
    "url": "https://example.com/hooks/cadenza",
    "status": "delivered",
    "attempts": [
        {
            "attempt": 1,
            "attempted_at": "2026-12-03T10:00:02Z",
            "status_code": 500,
            "latency_ms": 12.5,
            "error": "the receiver answered 500",
            "response_excerpt": "Internal Server Error",
        },
        {
            "attempt": 2,
            "attempted_at": "2026-12-03T10:00:07Z",
            "status_code": 200,
            "latency_ms": 9.1,
            "error": None,
            "response_excerpt": "ok",
        },
    ],
    "created_at": "2026-12-03T10:00:02Z",
    "next_attempt_at": None,
    "finished_at": "2026-12-03T10:00:07Z",
}


class BatchView(BaseModel):
    """Jobs submitted together. ``status``: ``processing`` until every job is final, then ``completed``.
    ``counts``: jobs per status (every status present). ``progress``: mean of the jobs' progress, percent.
    ``sequence``: the sum of its jobs' event numbers, which grows with every job event (the SSE ``id``).
    ``webhook``/``webhook_events_filter``: each job's unless the job named its own; the webhook is also told
    ``batch.completed`` once. ``completed_at``: when the last job became final."""

    model_config = ConfigDict(json_schema_extra={"examples": [BATCH_EXAMPLE]})

    id: UUID
    status: Literal["processing", "completed"]
    size: int
    counts: dict[str, int]
    progress: float
    sequence: int
    owner: str | None
    metadata: dict[str, Any] | None = None
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    created_at: datetime
    completed_at: datetime | None = None
    jobs: list[BatchJobView]
    url: str = ""


class WebhookAttemptView(BaseModel):
    """One try of a delivery: ``status_code`` None when no HTTP answer came (``error`` says why);
    ``latency_ms`` from connect to the answer's first bytes; ``response_excerpt``: at most 200 characters."""

    attempt: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str | None


class WebhookDeliveryView(BaseModel):
    """One webhook message (its ``id`` is the ``webhook-id`` header, the same on every attempt) and its state:
    ``pending`` (retried at ``next_attempt_at``), ``delivered``, ``failed`` (retries exhausted, or the address
    was refused) or ``gone`` (the receiver answered 410: not retried)."""

    model_config = ConfigDict(json_schema_extra={"examples": [DELIVERY_EXAMPLE]})

    id: str
    type: str
    url: str
    status: Literal["pending", "delivered", "failed", "gone"]
    attempts: list[WebhookAttemptView]
    created_at: datetime
    next_attempt_at: datetime | None
    finished_at: datetime | None


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


class BatchPage(BaseModel):
    """The latest batches, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"batches": [BATCH_EXAMPLE]}]})

    batches: list[BatchView]


class WebhookLog(BaseModel):
    """Webhook deliveries, oldest first, each with its attempts."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"deliveries": [DELIVERY_EXAMPLE]}]})

    deliveries: list[WebhookDeliveryView]


class BatchNotFound(LookupError):  # noqa: N818
    """Unknown batch id, or a batch of another owner (API 404)."""


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
