"""``/v1/jobs``: read, list, cancel, delete jobs and follow their events (Server-Sent Events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Literal
from uuid import UUID

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from cadenza.api.deps import JobOut, JobPage, OwnerDep, ServiceDep, job_out, require_admin
from cadenza.api.openapi import ENGINE_KIND, decimal_at_most
from cadenza.api.problems import ProblemError, responses
from cadenza.api.routes.submit import parse_prefer_wait
from cadenza.jobs import FINAL, JobNotFound, JobService, JobStatus
from cadenza.jobs.views import WebhookLog
from cadenza.jobs.webhooks import job_deliveries

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

EVENT_POLL_S = 0.1
PING_S = 15
MAX_EVENT_ID = 2**63 - 1
"""Event ids are SQL ``BIGINT``-sized sequence numbers (non-negative, 63-bit)."""
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"
"""``next_cursor`` is unpadded base64url text (empty: the first page)."""
LastEventIdHeader = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        description=f"Replay the events after this id (SSE reconnection): an integer from 0 to {MAX_EVENT_ID}.",
        json_schema_extra={"pattern": decimal_at_most(MAX_EVENT_ID)},  # checked by the route (422 naming it)
    ),
]


@router.get("", response_model=JobPage, summary="List jobs, newest first", responses=responses(401, 422, 429))
def list_jobs(
    service: ServiceDep,
    owner: OwnerDep,
    status: JobStatus | None = Query(None, description="Only jobs with this status."),
    kind: str | None = Query(None, description="Only jobs of this engine kind.", json_schema_extra=ENGINE_KIND),
    batch: UUID | None = Query(None, description="Only jobs of this batch."),
    limit: int = Query(50, ge=1, le=100, description="Page size."),
    cursor: str | None = Query(
        None, max_length=512, pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page."
    ),
) -> JobPage:
    if kind is not None and kind not in service.registry.kinds:
        raise ProblemError(
            422, f"Unknown kind {kind!r}; kinds: {', '.join(service.registry.kinds)}.", title="Validation Failed"
        )
    try:
        jobs, next_cursor = service.list(owner, status=status, kind=kind, limit=limit, cursor=cursor, batch_id=batch)
    except ValueError as exc:
        raise ProblemError(
            422,
            f"Invalid cursor: {exc}; pass the next_cursor of a previous page as it is",
            title="Invalid Cursor",
            errors=[{"loc": ["query", "cursor"], "msg": str(exc), "type": "invalid_cursor"}],
        ) from exc
    return JobPage(jobs=[job_out(j) for j in jobs], next_cursor=next_cursor)


@router.get(
    "/{job_id}",
    response_model=JobOut,
    summary="Get one job (with `Prefer: wait=N`: long-poll until its status changes)",
    responses=responses(401, 404, 422, 429),
)
async def get_job(
    request: Request,
    job_id: UUID,
    service: ServiceDep,
    owner: OwnerDep,
    prefer: Annotated[
        str | None,
        Header(
            description="`wait=N` (RFC 7240): answer once the job's status changes or it is final, or after N s "
            "(at most the server's `prefer_wait_max_s`, 60 by default; a value that is not a non-negative number "
            "is ignored), so a client can wait without polling."
        ),
    ] = None,
) -> Response:
    wait_s = parse_prefer_wait(prefer, request.app.state.settings.prefer_wait_max_s)
    headers = {}
    if wait_s is not None:
        view = await service.wait(job_id, owner, timeout_s=wait_s, until_status_change=True)
        headers["Preference-Applied"] = f"wait={wait_s:g}"
    else:
        view = await anyio.to_thread.run_sync(service.get, job_id, owner)
    return Response(job_out(view).model_dump_json(), media_type="application/json", headers=headers)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    summary="Cancel a job (idempotent)",
    responses=responses(401, 404, 422, 429),
)
def cancel_job(job_id: UUID, service: ServiceDep, owner: OwnerDep) -> JobOut:
    return job_out(service.cancel(job_id, owner))


@router.post(
    "/{job_id}/retry",
    status_code=201,
    response_model=JobOut,
    summary="Retry a failed or cancelled job: a new job with the same kind, params, options and inputs",
    responses=responses(401, 404, 409, 422, 429),
)
def retry_job(job_id: UUID, service: ServiceDep, owner: OwnerDep, response: Response) -> JobOut:
    """The new job is queued at once; it names the old one in ``retry_of``, and the old one names it in
    ``retried_by``. 409 when the job is not failed or cancelled, or an input file is gone (inputs sent as
    ``POST /v1/uploads`` ids come back from the upload while it exists)."""
    view = service.retry(job_id, owner)
    response.headers["Location"] = f"/v1/jobs/{view.id}"
    return job_out(view)


class BulkCancel(BaseModel):
    """Which jobs to cancel: queued and processing ones (or only ``status``), of ``kind`` and ``batch`` if
    given."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"status": "queued", "kind": "drums"}]})

    status: Literal["queued", "processing"] | None = None
    kind: str | None = Field(None, max_length=32, json_schema_extra=ENGINE_KIND)
    batch: UUID | None = Field(None, description="Only the jobs of this batch.")


class BulkCancelled(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"count": 1, "ids": ["6f1c2e1e-5a35-4a8e-9d7b-0b8b0f7c2a11"]}]}
    )

    count: int
    ids: list[UUID]


@router.post(
    "/cancel",
    response_model=BulkCancelled,
    summary="Cancel many jobs by status, kind and batch (admin key when auth is on)",
    dependencies=[Depends(require_admin)],
    responses=responses(400, 401, 403, 422, 429),
)
def cancel_jobs(body: BulkCancel, service: ServiceDep, owner: OwnerDep) -> BulkCancelled:
    """Cancels every queued and processing job (the admin key: everyone's) matching the filter, at most 1,000
    per call, oldest first; each as ``POST /v1/jobs/{id}/cancel`` would."""
    if body.kind is not None and body.kind not in service.registry.kinds:
        raise ProblemError(
            422, f"Unknown kind {body.kind!r}; kinds: {', '.join(service.registry.kinds)}.", title="Validation Failed"
        )
    status = JobStatus(body.status) if body.status else None
    ids = service.cancel_many(owner, status=status, kind=body.kind, batch_id=body.batch)
    return BulkCancelled(count=len(ids), ids=ids)


@router.get(
    "/{job_id}/webhooks",
    response_model=WebhookLog,
    summary="The job's webhook deliveries and each attempt (time, status code, latency, error)",
    responses=responses(401, 404, 422, 429),
)
def job_webhooks(job_id: UUID, service: ServiceDep, owner: OwnerDep) -> WebhookLog:
    return WebhookLog(deliveries=job_deliveries(service, job_id, owner))


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a job, its events and files (cancels it first if needed)",
    responses=responses(401, 404, 422, 429),
)
def delete_job(job_id: UUID, service: ServiceDep, owner: OwnerDep) -> Response:
    service.delete(job_id, owner)
    return Response(status_code=204)


@router.get(
    "/{job_id}/events",
    summary="Follow a job's status, progress and output events (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "`id:` is the job's event sequence number."},
        **responses(401, 404, 422, 429),
    },
)
async def job_events(
    request: Request,
    job_id: UUID,
    service: ServiceDep,
    owner: OwnerDep,
    last_event_id_query: int | None = Query(
        None, alias="last_event_id", ge=0, le=2**63 - 1, description="Replay after this id."
    ),
    last_event_id: LastEventIdHeader = None,
) -> EventSourceResponse:
    after = last_event_id_query or 0
    if last_event_id is not None:
        value = last_event_id.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= 19 and int(value) <= MAX_EVENT_ID):
            raise ProblemError(
                422, f"Last-Event-ID must be an integer from 0 to {MAX_EVENT_ID}.", title="Validation Failed"
            )
        after = int(value)
    await anyio.to_thread.run_sync(service.get, job_id, owner)  # 404 before the stream starts
    return EventSourceResponse(_event_stream(request, service, job_id, owner, after), ping=PING_S)


async def _event_stream(
    request: Request, service: JobService, job_id: UUID, owner: str | None, after: int
) -> AsyncIterator[ServerSentEvent]:
    idle_polls = 0
    while True:
        try:
            events = await anyio.to_thread.run_sync(partial(service.events, job_id, owner, after_sequence=after))
        except JobNotFound:
            return  # deleted while streaming
        for event in events:
            after = event.sequence
            payload = event.model_dump(mode="json")
            yield ServerSentEvent(data=json.dumps(payload), event=event.type, id=str(event.sequence))
            if event.type == "status" and event.data.get("status") in FINAL:
                return
        if events:
            idle_polls = 0
        else:
            idle_polls += 1
            # first idle poll, then every ~2 s: a final job whose last event was sent ends the stream
            if idle_polls == 1 or idle_polls % 20 == 0:
                try:
                    job = await anyio.to_thread.run_sync(service.get, job_id, owner)
                except JobNotFound:
                    return
                if job.status in FINAL and job.sequence <= after:
                    return
        if await request.is_disconnected():
            return
        await anyio.sleep(EVENT_POLL_S)
