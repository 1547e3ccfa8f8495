"""Submit routes built from the engine registry: ``POST /v1/{spec.route}``.

JSON engines take ``spec.request_model`` as the body; upload engines (``spec.accepts_upload``) take
``multipart/form-data`` with a ``file`` part plus the request model's fields as form fields. The
multipart body is parsed while it streams in (``python_multipart.MultipartParser``) and the file part
is written to a staging file under ``files_dir/uploads/`` with ``max_upload_bytes`` enforced as bytes
arrive; nothing is spooled elsewhere and the staged file is removed on any error.

``Prefer: wait=N`` (RFC 7240) waits up to ``min(N, prefer_wait_max_s)`` seconds for the job.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the per-engine body annotation at runtime.

import contextlib
import json
import re
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import anyio.to_thread
import structlog
from fastapi import APIRouter, Body, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from cadenza.api.auth import Principal
from cadenza.api.deps import JobOut, get_principal, job_out
from cadenza.api.problems import ProblemError, responses
from cadenza.engines.base import EngineSpec
from cadenza.jobs import FINAL, JobService, JobView

log = structlog.get_logger("cadenza.api")

JSON_TYPES = ("application/json",)
UPLOAD_TYPES = ("multipart/form-data",)
#: Room for multipart boundaries, part headers and form fields on top of ``max_upload_bytes``.
FORM_OVERHEAD_BYTES = 256 * 1024
MAX_FIELD_BYTES = 16 * 1024
MAX_FIELDS = 64
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
IDEMPOTENCY_KEY_MAX = 255


def parse_prefer_wait(prefer: str | None, max_s: float) -> float | None:
    """Seconds to wait from a ``Prefer: wait=N`` header (RFC 7240 §4.3), capped at ``max_s``; None if absent."""
    if not prefer:
        return None
    match = _PREFER_WAIT.search(prefer)
    if match is None:
        return None
    return min(float(match.group(1)), max_s)


def content_type_route(accepted: tuple[str, ...]) -> type[APIRoute]:
    """An APIRoute that answers 415 (problem listing ``accepted``) before the body is read or validated."""

    class ContentTypeRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Any]:
            handler = super().get_route_handler()

            async def checked(request: Request) -> Response:
                media_type = parse_options_header(request.headers.get("content-type"))[0].decode("latin-1").lower()
                if media_type not in accepted:
                    raise ProblemError(
                        415,
                        f"Content-Type {media_type or '(none)'!r} is not accepted here; use {', '.join(accepted)}.",
                        title="Unsupported Media Type",
                        headers={"Accept-Post": ", ".join(accepted)},
                    )
                return await handler(request)

            return checked

    return ContentTypeRoute


def _check_intake(request: Request) -> None:
    if request.app.state.draining:
        raise ProblemError(
            503, "The server is shutting down and accepts no new jobs.", title="Draining", headers={"Retry-After": "30"}
        )


async def _respond(
    request: Request,
    service: JobService,
    view: JobView,
    created: bool,
    principal: Principal,
    prefer: str | None,
) -> Response:
    settings = request.app.state.settings
    wait_s = parse_prefer_wait(prefer, settings.prefer_wait_max_s)
    headers = {"Location": f"/v1/jobs/{view.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    if wait_s is not None:
        headers["Preference-Applied"] = f"wait={wait_s:g}"
        if view.status not in FINAL and wait_s > 0:
            view = await service.wait(view.id, principal.owner, timeout_s=wait_s)
    status = 200 if view.status in FINAL and (wait_s is not None or not created) else 202
    body = job_out(view).model_dump_json()
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def _submit(
    request: Request,
    spec: EngineSpec,
    params: BaseModel,
    principal: Principal,
    idempotency_key: str | None,
    upload: Path | None = None,
    upload_info: dict[str, Any] | None = None,
) -> tuple[JobView, bool]:
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
        raise ProblemError(
            422, f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} characters.", title="Validation Failed"
        )
    settings = request.app.state.settings
    if spec.validate_request is not None:
        warnings = await anyio.to_thread.run_sync(spec.validate_request, params, settings)
        if warnings:
            log.info("request_warnings", kind=spec.kind, warnings=warnings)
    service: JobService = request.app.state.service
    submit = partial(
        service.submit,
        spec.kind,
        params.model_dump(mode="json"),
        owner=principal.owner,
        idempotency_key=idempotency_key,
        upload=upload,
        upload_info=upload_info,
    )
    view, created = await anyio.to_thread.run_sync(submit)
    log.info("job_submitted", job_id=str(view.id), kind=spec.kind, created=created)
    return view, created


def _add_submit_route(
    router: APIRouter,
    spec: EngineSpec,
    endpoint: Callable[..., Any],
    how: str,
    content_types: tuple[str, ...],
    openapi_extra: dict[str, Any] | None = None,
) -> None:
    """``POST /v1/<route>`` of ``spec``: 202 with the queued job (200 with ``Prefer: wait``), accepting
    only ``content_types``; ``how`` ends the operation's description."""
    router.add_api_route(
        f"/v1/{spec.route}",
        endpoint,
        methods=["POST"],
        status_code=202,
        response_model=JobOut,
        summary=spec.summary,
        description=(spec.request_model.__doc__ or spec.summary) + "\n\n" + how,
        operation_id=f"submit_{spec.kind}",
        tags=[spec.kind],
        openapi_extra=openapi_extra,
        responses={200: {"model": JobOut, "description": "Finished within `Prefer: wait`."}}
        | responses(401, 413, 415, 422, 429, 503),
        route_class_override=content_type_route(content_types),
    )


PreferHeader = Annotated[str | None, Header(description="`wait=N`: wait up to N s (max 60) for the result.")]
IdempotencyKeyHeader = Annotated[
    str | None, Header(alias="Idempotency-Key", description="Retries with the same key return the same job.")
]


def json_submit_route(router: APIRouter, spec: EngineSpec) -> None:
    model = spec.request_model
    examples = {"default": {"summary": spec.summary, "value": spec.example}} if spec.example else None

    async def submit(
        request: Request,
        params: Annotated[model, Body(openapi_examples=examples)],  # type: ignore[valid-type]
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyKeyHeader = None,
        principal: Principal = Depends(get_principal),
    ) -> Response:
        _check_intake(request)
        view, created = await _submit(request, spec, params, principal, idempotency_key)
        return await _respond(request, request.app.state.service, view, created, principal, prefer)

    _add_submit_route(
        router,
        spec,
        submit,
        "Answers 202 with the queued job and `Location`; with `Prefer: wait=N`, 200 once finished.",
        JSON_TYPES,
    )


class _UploadState:
    """Collects one multipart body: form fields in memory, the ``file`` part into ``staged``."""

    def __init__(self, staged: Path, max_file_bytes: int) -> None:
        self.staged, self.max_file_bytes = staged, max_file_bytes
        self.fields: dict[str, list[str]] = {}
        self.filename: str | None = None
        self.file_bytes = 0
        self.error: ProblemError | None = None
        self._file: Any = None
        self._headers: dict[str, str] = {}
        self._field = b""
        self._value = b""
        self._name: str | None = None
        self._buffer = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._append_header("_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._append_header("_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _append_header(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def _part_begin(self) -> None:
        self._headers, self._name, self._buffer = {}, None, bytearray()

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value.decode("utf-8", "replace")
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == "file":
            if self._file is not None:
                self._fail(422, "Send exactly one `file` part.")
                return
            self.filename = options.get(b"filename", b"upload").decode("utf-8", "replace")[:255]
            self._file = self.staged.open("wb")
        elif len(self.fields) >= MAX_FIELDS:
            self._fail(422, f"At most {MAX_FIELDS} form fields are accepted.")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        if self._name == "file" and self._file is not None:
            self.file_bytes += end - start
            if self.file_bytes > self.max_file_bytes:
                self._fail(413, f"The uploaded file exceeds max_upload_bytes ({self.max_file_bytes} bytes).")
                return
            self._file.write(data[start:end])
        else:
            self._buffer += data[start:end]
            if len(self._buffer) > MAX_FIELD_BYTES:
                self._fail(413, f"Form field {self._name!r} exceeds {MAX_FIELD_BYTES} bytes.")

    def _part_end(self) -> None:
        if self._name == "file":
            self.close()
        elif self._name and self.error is None:
            self.fields.setdefault(self._name, []).append(self._buffer.decode("utf-8", "replace"))

    def _fail(self, status: int, detail: str) -> None:
        if self.error is None:
            title = "Content Too Large" if status == 413 else "Validation Failed"
            self.error = ProblemError(status, detail, title=title)

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()


def _is_list_field(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    if field is None:
        return False
    annotation = field.annotation
    return get_origin(annotation) is list or any(get_origin(arg) is list for arg in get_args(annotation))


def form_to_params(model: type[BaseModel], fields: dict[str, list[str]]) -> dict[str, Any]:
    """Form fields -> model input. List fields take repeated fields, a JSON array or comma-separated text;
    other fields take their last value; an empty value means "not given"."""
    params: dict[str, Any] = {}
    for name, values in fields.items():
        values = [v for v in values if v != ""]
        if not values:
            continue
        if _is_list_field(model, name):
            if len(values) == 1 and values[0].lstrip().startswith("["):
                try:
                    params[name] = json.loads(values[0])
                    continue
                except json.JSONDecodeError:
                    pass
            params[name] = [part.strip() for value in values for part in value.split(",") if part.strip()]
        else:
            params[name] = values[-1]
    return params


async def receive_upload(request: Request, staged: Path, max_file_bytes: int) -> _UploadState:
    """Stream a ``multipart/form-data`` body into ``staged`` (file part) and memory (fields).

    Raises ProblemError (400 malformed, 413 too large, 422 missing file). The caller removes ``staged``.
    """
    _, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if not boundary:
        raise ProblemError(400, "multipart/form-data needs a boundary parameter.", title="Malformed Multipart Body")
    state = _UploadState(staged, max_file_bytes)
    parser = MultipartParser(boundary, state.callbacks())
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except Exception as exc:  # python_multipart raises its own parse errors
                raise ProblemError(400, f"Malformed multipart body: {exc}", title="Malformed Multipart Body") from exc
            if state.error is not None:
                raise state.error
        parser.finalize()
    finally:
        state.close()
    if state.error is not None:
        raise state.error
    if state.filename is None:
        raise ProblemError(
            422,
            "The form has no `file` part.",
            title="Validation Failed",
            errors=[{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}],
        )
    if state.file_bytes == 0:
        raise ProblemError(422, "The uploaded file is empty.", title="Validation Failed")
    return state


def upload_submit_route(router: APIRouter, spec: EngineSpec) -> None:
    model = spec.request_model
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    form_schema = {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}, **schema.get("properties", {})},
        "required": ["file", *schema.get("required", [])],
    }

    async def submit(
        request: Request,
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyKeyHeader = None,
        principal: Principal = Depends(get_principal),
    ) -> Response:
        _check_intake(request)
        settings = request.app.state.settings
        uploads = Path(settings.files_dir) / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        staged = uploads / f"{uuid.uuid4().hex}.part"
        try:
            state = await receive_upload(request, staged, settings.max_upload_bytes)
            try:
                params = model.model_validate(form_to_params(model, state.fields))
            except ValidationError as exc:  # the same 422 problem as a JSON body's field errors
                raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
            info: dict[str, Any] = {}
            if spec.probe_upload is not None:
                info = dict(await anyio.to_thread.run_sync(spec.probe_upload, staged, settings) or {})
            info.setdefault("filename", state.filename)
            info.setdefault("size_bytes", state.file_bytes)
            view, created = await _submit(request, spec, params, principal, idempotency_key, staged, info)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()  # submit() moved it into the job folder; anything left is an aborted upload
        return await _respond(request, request.app.state.service, view, created, principal, prefer)

    _add_submit_route(
        router,
        spec,
        submit,
        "`multipart/form-data`: a `file` part plus the fields below. Answers 202 with the queued job.",
        UPLOAD_TYPES,
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form_schema}}}},
    )


def build_router(engines: list[EngineSpec]) -> APIRouter:
    """One submit route per engine."""
    router = APIRouter()
    for spec in engines:
        if spec.accepts_upload:
            upload_submit_route(router, spec)
        else:
            json_submit_route(router, spec)
    return router
