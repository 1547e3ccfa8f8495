"""``/v1/batches``: many jobs of any engines submitted together, followed and cancelled as one.

``POST /v1/batches`` validates every item with the same path as a single submit (the engine's request model
and ``validate_request``, upload references probed, ``check_inputs``) and answers one 422 that lists the index
and field of every error before any job exists; then the batch and all its jobs are created in one
transaction (:class:`cadenza.jobs.batches.Batches`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any
from uuid import UUID

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ConfigDict, Field, StringConstraints, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from cadenza.api.auth import Principal
from cadenza.api.deps import OwnerDep, ServiceDep, get_principal
from cadenza.api.openapi import ENGINE_JOBS, max_items_setting
from cadenza.api.problems import ProblemError, responses
from cadenza.api.routes.submit import (
    IdempotencyKeyHeader,
    _check_capacity,
    _check_idempotency_key,
    _check_intake,
    _json_references,
    content_type_route,
    load_json,
    resolve_inputs,
)
from cadenza.engines.base import EngineInputError, EngineSpec
from cadenza.jobs import JobService
from cadenza.jobs.batches import BatchItem
from cadenza.jobs.options import JobOptions, webhook_context
from cadenza.jobs.service import UPLOAD_ID_RE
from cadenza.jobs.urls import WebhookPolicy
from cadenza.jobs.views import BatchPage, BatchView, WebhookLog
from cadenza.jobs.webhooks import deliveries

router = APIRouter(prefix="/v1/batches", tags=["batches"])

EVENT_POLL_S = 0.2
PING_S = 15
MAX_ERRORS = 200


class BatchJobIn(JobOptions):
    """One job of a batch: its engine ``kind``, the engine's ``params`` (as the engine's submit route takes
    them), its ``inputs`` as ``POST /v1/uploads`` ids by input name, and its own job options (``priority``,
    ``metadata``, ``webhook``, ``webhook_events_filter``; the batch's webhook and priority otherwise)."""

    # In the OpenAPI document, a union on ``kind`` with one branch per registered engine (its request model as
    # ``params``, its declared inputs): what ``_item`` checks, as far as JSON Schema can say it.
    model_config = ConfigDict(json_schema_extra=ENGINE_JOBS)

    kind: str = Field(max_length=32, description="The engine kind of the job.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The engine's parameters, as its own submit route takes them."
    )
    inputs: dict[str, Annotated[str, StringConstraints(pattern=UPLOAD_ID_RE.pattern)]] = Field(
        default_factory=dict,
        description="Input files by name (the kind's declared inputs), as ids of POST /v1/uploads files.",
    )


class BatchIn(JobOptions):
    """Up to ``max_batch_jobs`` (100 by default) jobs, plus batch-level options: ``webhook`` and
    ``webhook_events_filter`` (each job's unless it names its own; the webhook also gets ``batch.completed``
    once every job is final), ``metadata`` (the batch's, echoed in its view) and ``priority`` (each job's
    unless it sets its own)."""

    jobs: list[BatchJobIn] = Field(min_length=1, max_length=1000, json_schema_extra=max_items_setting("max_batch_jobs"))


BATCH_EXAMPLE = {
    "jobs": [
        {"kind": "drums", "params": {"producer_style": "J Dilla", "bars": 2, "seed": 1}},
        {"kind": "drums", "params": {"producer_style": "Questlove", "bars": 2, "seed": 2}, "priority": 5},
    ],
    "metadata": {"session": "beat-tape-3"},
}


def _at(index: int, error: dict[str, Any], *prefix: Any) -> dict[str, Any]:
    return {
        "loc": ["body", "jobs", index, *prefix, *error.get("loc", ())],
        "msg": str(error.get("msg", "")),
        "type": str(error.get("type", "value_error")),
    }


async def _item(
    request: Request, index: int, item: BatchJobIn, batch: BatchIn, principal: Principal, errors: list[dict[str, Any]]
) -> BatchItem | None:
    """Validate one item as its engine's submit route would; append its errors (with ``index``) to ``errors``."""
    settings = request.app.state.settings
    service: JobService = request.app.state.service
    first_error = len(errors)
    if item.kind not in service.registry.kinds:
        kinds = ", ".join(service.registry.kinds)
        errors.append(_at(index, {"loc": ("kind",), "msg": f"unknown kind; kinds: {kinds}", "type": "enum"}))
        return None
    spec: EngineSpec = service.registry.get(item.kind)
    raw = dict(item.params)
    try:
        references = _json_references(spec, raw)
    except RequestValidationError as exc:
        errors.extend(_at(index, {**e, "loc": e["loc"][1:]}, "params") for e in exc.errors())
        return None
    for name, upload_id in item.inputs.items():
        if name not in {declared.name for declared in spec.inputs}:
            names = ", ".join(d.name for d in spec.inputs) or "none"
            errors.append(
                _at(index, {"loc": (name,), "msg": f"{item.kind} takes no input {name!r} (inputs: {names})"}, "inputs")
            )
            continue
        references[name] = [upload_id]
    try:
        params, _ = await anyio.to_thread.run_sync(spec.validate, raw, settings)
    except ValidationError as exc:
        errors.extend(_at(index, e, "params") for e in exc.errors())
        return None
    except EngineInputError as exc:
        errors.append(_at(index, {"loc": (), "msg": str(exc), "type": "engine_input"}, "params"))
        return None
    try:  # the single submit's path (a batch carries no file parts): each input from its upload, size-checked
        # and probed; its first problem, located by the problem's own errors entry
        inputs = await resolve_inputs(request, spec, {}, references, principal)
    except ProblemError as exc:
        error = (exc.errors or [{"loc": ["body"], "type": "input_rejected"}])[0]
        errors.append(_at(index, {"loc": tuple(error["loc"][1:]), "msg": exc.detail, "type": error["type"]}, "inputs"))
    if len(errors) > first_error:
        return None
    try:
        facts = {name: staged.info for name, staged in inputs.items()}
        await anyio.to_thread.run_sync(spec.check_inputs, params, facts, settings)
    except EngineInputError as exc:
        errors.append(_at(index, {"loc": (), "msg": str(exc), "type": "engine_input"}, "params"))
        return None
    options = _options(item, settings)
    if "priority" not in item.model_fields_set:
        options.priority = batch.priority
    return BatchItem(item.kind, params.model_dump(mode="json"), inputs, options)


def _options(model: JobOptions, settings: Any) -> JobOptions:
    """The plain job options of a batch or one of its items (already validated with the allowed hosts)."""
    return JobOptions.model_validate(
        model.model_dump(include=set(JobOptions.model_fields)),
        context=webhook_context(WebhookPolicy.from_settings(settings)),
    )


async def submit_batch(
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
    principal: Principal = Depends(get_principal),
) -> Response:
    """Every job is validated first; one invalid job (its index and field are in the problem's `errors`) means
    no job is created. Then the batch and its jobs are stored in one transaction: 202 with the batch and
    `Location`. Jobs run in the batch's order within their priority."""
    _check_intake(request)
    _check_idempotency_key(idempotency_key)
    await _check_capacity(request)
    settings = request.app.state.settings
    raw = load_json(await request.body(), "body")
    try:
        batch = BatchIn.model_validate(raw, context=webhook_context(WebhookPolicy.from_settings(settings)))
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
    if len(batch.jobs) > settings.max_batch_jobs:
        raise ProblemError(
            422,
            f"The batch has {len(batch.jobs)} jobs; at most {settings.max_batch_jobs} are accepted per batch.",
            title="Validation Failed",
            errors=[{"loc": ["body", "jobs"], "msg": f"at most {settings.max_batch_jobs} items", "type": "too_long"}],
        )
    errors: list[dict[str, Any]] = []
    items = [await _item(request, i, item, batch, principal, errors) for i, item in enumerate(batch.jobs)]
    if errors:
        bad = sorted({e["loc"][2] for e in errors})
        summary = "; ".join(f"jobs[{e['loc'][2]}].{'.'.join(map(str, e['loc'][3:]))}: {e['msg']}" for e in errors[:5])
        raise ProblemError(
            422,
            f"{len(bad)} of {len(batch.jobs)} jobs are invalid, so none was created: {summary}",
            title="Validation Failed",
            errors=errors[:MAX_ERRORS],
        )
    service: JobService = request.app.state.service
    options = _options(batch, settings)
    submit = partial(
        service.batches.submit,
        [item for item in items if item is not None],
        owner=principal.owner,
        idempotency_key=idempotency_key,
        options=options,
    )
    view, created = await anyio.to_thread.run_sync(submit)
    headers = {"Location": view.url}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        view.model_dump_json(), status_code=202 if created else 200, headers=headers, media_type="application/json"
    )


router.add_api_route(
    "",
    submit_batch,
    methods=["POST"],
    operation_id="create_batch",
    status_code=202,
    response_model=BatchView,
    summary="Submit up to 100 jobs of any engines as one batch (all or none)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": BatchIn.model_json_schema(ref_template="#/components/schemas/{model}"),
                    "examples": {"default": {"summary": "Two grooves", "value": BATCH_EXAMPLE}},
                }
            },
        }
    },
    responses={200: {"model": BatchView, "description": "An idempotent repeat: the existing batch."}}
    | responses(401, 413, 415, 422, 429, 503),
    route_class_override=content_type_route(("application/json",)),
)


@router.get("", response_model=BatchPage, summary="List batches, newest first", responses=responses(401, 422, 429))
def list_batches(
    service: ServiceDep, owner: OwnerDep, limit: int = Query(20, ge=1, le=100, description="How many.")
) -> BatchPage:
    return BatchPage(batches=service.batches.list(owner, limit))


@router.get(
    "/{batch_id}",
    response_model=BatchView,
    summary="Get a batch: counts per status, progress, jobs",
    responses=responses(401, 404, 422, 429),
)
def get_batch(batch_id: UUID, service: ServiceDep, owner: OwnerDep) -> BatchView:
    return service.batches.get(batch_id, owner)


@router.post(
    "/{batch_id}/cancel",
    response_model=BatchView,
    summary="Cancel every queued and processing job of a batch",
    responses=responses(401, 404, 422, 429),
)
def cancel_batch(batch_id: UUID, service: ServiceDep, owner: OwnerDep) -> BatchView:
    return service.batches.cancel(batch_id, owner)


@router.get(
    "/{batch_id}/webhooks",
    response_model=WebhookLog,
    summary="The batch's own webhook deliveries (`batch.completed`) and their attempts",
    responses=responses(401, 404, 422, 429),
)
def batch_webhooks(batch_id: UUID, service: ServiceDep, owner: OwnerDep) -> WebhookLog:
    view = service.batches.get(batch_id, owner)
    return WebhookLog(deliveries=deliveries(service.engine, batch_id=view.id))


@router.get(
    "/{batch_id}/events",
    summary="Follow a batch (Server-Sent Events): a `batch` event with the view at each change",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: batch`, `data:` the batch view, `id:` its `sequence` (grows with every job "
            "event); the stream ends after the view whose status is `completed`.",
        },
        **responses(401, 404, 422, 429),
    },
)
async def batch_events(
    request: Request,
    batch_id: UUID,
    service: ServiceDep,
    owner: OwnerDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Resume after this batch `sequence` (SSE reconnection): at most 18 digits.",
            json_schema_extra={"pattern": r"^[0-9]{1,18}$"},
        ),
    ] = None,
) -> EventSourceResponse:
    after = -1
    if last_event_id is not None:
        value = last_event_id.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise ProblemError(
                422, "Last-Event-ID must be a batch sequence number (1 to 18 digits).", title="Validation Failed"
            )
        after = int(value)
    view = await anyio.to_thread.run_sync(service.batches.get, batch_id, owner)  # 404 before the stream starts
    return EventSourceResponse(_stream(request, service, view, owner, after), ping=PING_S)


async def _stream(
    request: Request, service: JobService, view: BatchView, owner: str | None, after: int
) -> AsyncIterator[ServerSentEvent]:
    """The batch view each time its sequence moves, from ``view`` (just read) on, until it is completed."""
    while True:
        if view.sequence > after or view.status == "completed":
            after = view.sequence
            yield ServerSentEvent(data=json.dumps(view.model_dump(mode="json")), event="batch", id=str(view.sequence))
            if view.status == "completed":
                return
        if await request.is_disconnected():
            return
        await anyio.sleep(EVENT_POLL_S)
        view = await anyio.to_thread.run_sync(service.batches.get, view.id, owner)
