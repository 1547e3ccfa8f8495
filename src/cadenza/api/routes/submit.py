"""Submit routes built from the engine registry: ``POST /v1/{spec.route}``, and ``/v1/uploads``.

An engine without declared inputs takes its request model as a JSON body. An engine with inputs
(``spec.inputs``) takes ``multipart/form-data``: each input as a file part named after it, or as a form
field of that name holding the id of a file sent before with ``POST /v1/uploads``; the request's fields
as form fields and/or one ``params`` part holding a JSON object. When every input is optional (a drums
``reference_midi``), the route also takes a JSON body, each input given as an upload id field.
Multipart bodies are parsed while they stream in (``python_multipart.MultipartParser``); each file part is written to
``files_dir/uploads/<uuid><ext>.part`` (its extension kept) under its input's size limit, hashed
(SHA-256, part of the idempotency fingerprint) and probed by the engine; nothing is spooled elsewhere
and staged files are removed on any error.

Every route validates through ``spec.validate(raw, settings)`` with the app's settings: the same path as
the worker and the CLI. ``Prefer: wait=N`` (RFC 7240) waits up to ``min(N, prefer_wait_max_s)`` seconds.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the per-engine body annotation at runtime.

import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, NoReturn, get_args, get_origin

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from cadenza.api.auth import Principal
from cadenza.api.deps import JobOut, get_principal, job_out
from cadenza.api.middleware import log_fields
from cadenza.api.openapi import not_null
from cadenza.api.problems import ProblemError, responses
from cadenza.engines.base import EngineSpec, InputSpec, UploadRejected, resolve
from cadenza.jobs import FINAL, JobService, JobView, StagedInput, UploadNotFound
from cadenza.jobs.options import JobOptions
from cadenza.jobs.urls import WebhookPolicy

JSON_TYPES = ("application/json",)
QUEUE_FULL_RETRY_S = 10
UPLOAD_TYPES = ("multipart/form-data",)
#: Room for multipart boundaries, part headers and form fields on top of ``max_upload_bytes``.
FORM_OVERHEAD_BYTES = 256 * 1024
MAX_PARTS = 64
"""Parts of one multipart body: form fields and files together, a repeated name counted each time."""
MAX_FIELD_BYTES = 16 * 1024
"""Bytes of one form field (a part without a file name), held in memory."""
MAX_FORM_BYTES = 128 * 1024
"""Bytes of all the form fields of one body together, held in memory (file parts are streamed to disk)."""
_PREFER_WAIT = re.compile(r'(?:^|[,;\s])wait\s*=\s*"?([^\s,;"]*)', re.IGNORECASE)
#: ``delta-seconds`` (RFC 9111 §1.2.2), also with a fraction or an exponent (``1.5``, ``1e9``): never negative.
_WAIT_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
IDEMPOTENCY_KEY_MAX = 255


def parse_prefer_wait(prefer: str | None, max_s: float) -> float | None:
    """Seconds to wait from a ``Prefer: wait=N`` header (RFC 7240 §4.3): N seconds, at most ``max_s`` (any
    larger N, ``1e9`` or 5,000 digits, is ``max_s``); None when absent or not a non-negative number
    (``wait=-1``, ``wait=soon``): a preference the server cannot apply is ignored (RFC 7240 §2)."""
    if not prefer:
        return None
    match = _PREFER_WAIT.search(prefer)
    if match is None or not _WAIT_SECONDS.fullmatch(match.group(1)):
        return None
    return min(float(match.group(1)), max_s)  # float() of a huge value is inf, never an error


def _request_media_type(request: Request) -> str:
    """The request's ``Content-Type`` essence, lower case (``""`` when absent)."""
    return parse_options_header(request.headers.get("content-type"))[0].decode("latin-1").lower()


def content_type_route(accepted: tuple[str, ...]) -> type[APIRoute]:
    """An APIRoute that answers 415 (problem listing ``accepted``) before the body is read or validated."""

    class ContentTypeRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Any]:
            handler = super().get_route_handler()

            async def checked(request: Request) -> Response:
                media_type = _request_media_type(request)
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


def load_json(data: str | bytes, loc: str) -> Any:
    """Parse JSON from a request, or raise RequestValidationError (422) saying why: malformed JSON,
    not UTF-8, an integer over Python's 4,300 digits, nesting too deep, or a NUL character in a
    string (no database stores one)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = getattr(exc, "msg", None) or ("nesting too deep" if isinstance(exc, RecursionError) else str(exc))
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", loc), "msg": f"JSON decode error: {reason}", "input": None}]
        ) from None
    reject_nul(value, loc)
    return value


def reject_nul(value: Any, loc: str) -> None:
    """Raise RequestValidationError (422) if a string anywhere in ``value`` holds NUL (U+0000): no
    database stores one (PostgreSQL refuses it)."""

    def has_nul(item: Any) -> bool:
        if isinstance(item, str):
            return "\x00" in item
        if isinstance(item, dict):
            return any(has_nul(k) or has_nul(v) for k, v in item.items())
        return isinstance(item, list) and any(has_nul(v) for v in item)

    if has_nul(value):
        raise RequestValidationError(
            [{"type": "string_nul", "loc": ("body", loc), "msg": "must not contain NUL (U+0000)", "input": None}]
        )


def _check_intake(request: Request) -> None:
    if request.app.state.draining:
        raise ProblemError(
            503, "The server is shutting down and accepts no new jobs.", title="Draining", headers={"Retry-After": "30"}
        )


async def _check_capacity(request: Request) -> None:
    """Overload guard: 503 with ``Retry-After`` once ``max_queued_jobs`` jobs are queued, instead of
    letting the queue (and every client's wait) grow without bound."""
    limit = request.app.state.settings.max_queued_jobs
    depth = await anyio.to_thread.run_sync(request.app.state.service.queue_depth)
    if depth >= limit:
        raise ProblemError(
            503,
            f"{depth} jobs are queued (the limit is {limit}); submit again later.",
            title="Queue Full",
            headers={"Retry-After": str(QUEUE_FULL_RETRY_S)},
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


def validation_error(exc: ValidationError, prefix: tuple[str, ...] = ("body",)) -> RequestValidationError:
    """A Pydantic error as the API's standard 422 (field locations under ``prefix``)."""
    return RequestValidationError([{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors()])


async def validate_params(request: Request, spec: EngineSpec, raw: Any) -> BaseModel:
    """The one validation path with the app's settings: 422 (field errors or an EngineInputError)."""
    if not isinstance(raw, dict):
        raise RequestValidationError(
            [{"type": "model_attributes_type", "loc": ("body",), "msg": "Input should be an object", "input": raw}]
        )
    settings = request.app.state.settings
    try:
        params, warnings = await anyio.to_thread.run_sync(spec.validate, raw, settings)
    except ValidationError as exc:
        raise validation_error(exc) from exc
    if warnings:
        log_fields(request)["warnings"] = warnings
    return params


def split_options(
    raw: Any, policy: WebhookPolicy | list[str], prefix: tuple[Any, ...] = ("body",)
) -> tuple[Any, JobOptions]:
    """The job-level options (``priority``, ``metadata``, ``webhook``, ``webhook_events_filter``) out of a
    request's raw fields: (the engine's fields, the options); ``policy`` is where webhooks may go
    (``WebhookPolicy.from_settings``). Raises RequestValidationError (422) for invalid options."""
    if not isinstance(raw, dict):
        return raw, JobOptions()
    try:
        return JobOptions.split(raw, policy)
    except ValidationError as exc:
        raise validation_error(exc, prefix) from exc


async def _submit(
    request: Request,
    spec: EngineSpec,
    params: BaseModel,
    principal: Principal,
    idempotency_key: str | None,
    inputs: dict[str, StagedInput] | None = None,
    options: JobOptions | None = None,
) -> tuple[JobView, bool]:
    service: JobService = request.app.state.service
    options = options or JobOptions()
    submit = partial(
        service.submit,
        spec.kind,
        params.model_dump(mode="json"),
        owner=principal.owner,
        idempotency_key=idempotency_key,
        inputs=inputs,
        priority=options.priority,
        metadata=options.metadata,
        webhook=options.webhook,
        webhook_events=options.webhook_events,
    )
    view, created = await anyio.to_thread.run_sync(submit)
    log_fields(request).update(job_id=str(view.id), kind=spec.kind, created=created)  # on the one access line
    return view, created


def _check_idempotency_key(idempotency_key: str | None) -> None:
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
        raise ProblemError(
            422, f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} characters.", title="Validation Failed"
        )


def _add_submit_route(
    router: APIRouter,
    spec: EngineSpec,
    endpoint: Callable[..., Any],
    how: str,
    content_types: tuple[str, ...],
    request_body: dict[str, Any],
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
        openapi_extra={"requestBody": {"required": True, "content": request_body}},
        responses={200: {"model": JobOut, "description": "Finished within `Prefer: wait`."}}
        | responses(*((400,) if "multipart/form-data" in content_types else ()), 401, 413, 415, 422, 429, 503),
        route_class_override=content_type_route(content_types),
    )


PreferHeader = Annotated[
    str | None,
    Header(
        description="`wait=N` (RFC 7240): wait up to N s for the result; a larger N than the server's "
        "`prefer_wait_max_s` (60 by default) waits that long, a value that is not a non-negative number is ignored."
    ),
]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        description="Retries with the same key (1-255 characters) return the same job.",
    ),
]


def _with_options(schema: dict[str, Any]) -> dict[str, Any]:
    """An engine's request schema with the job-level options beside its fields (every submit route)."""
    return {
        "type": "object",
        "properties": schema.get("properties", {}) | JobOptions.schema_properties(),
        "required": list(schema.get("required", [])),
        "additionalProperties": False,
    } | cross_field_rules(schema)


def json_submit_route(router: APIRouter, spec: EngineSpec) -> None:
    model_schema = spec.request_model.model_json_schema(ref_template="#/components/schemas/{model}")
    content: dict[str, Any] = {"schema": _with_options(model_schema)}
    if spec.example:
        content["examples"] = {"default": {"summary": spec.summary, "value": spec.example}}

    async def submit(
        request: Request,
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyKeyHeader = None,
        principal: Principal = Depends(get_principal),
    ) -> Response:
        _check_intake(request)
        _check_idempotency_key(idempotency_key)
        await _check_capacity(request)
        policy = WebhookPolicy.from_settings(request.app.state.settings)
        raw, options = split_options(load_json(await request.body(), "body"), policy)
        params = await validate_params(request, spec, raw)
        view, created = await _submit(request, spec, params, principal, idempotency_key, options=options)
        return await _respond(request, request.app.state.service, view, created, principal, prefer)

    _add_submit_route(
        router,
        spec,
        submit,
        "Answers 202 with the queued job and `Location`; with `Prefer: wait=N`, 200 once finished.",
        JSON_TYPES,
        {"application/json": content},
    )


@dataclass
class _Staged:
    """One file part as it arrives: the staging path, its bytes so far, its SHA-256."""

    name: str
    path: Path
    filename: str
    limit: int
    media_type: str = "application/octet-stream"
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    handle: Any = None


class _UploadState:
    """Collects one multipart body: form fields in memory, file parts named in ``limits`` into staging
    files (``staging(extension)`` makes their paths), each under its own byte limit. At most
    :data:`MAX_PARTS` parts, :data:`MAX_FIELD_BYTES` per field and :data:`MAX_FORM_BYTES` of fields in all are
    taken: past a limit, the callback raises the problem (``error``), which stops the parser at once."""

    def __init__(self, limits: dict[str, int], staging: Callable[[str], Path]) -> None:
        self.limits, self.staging = limits, staging
        self.fields: dict[str, list[str]] = {}
        self.files: dict[str, _Staged] = {}
        self.error: ProblemError | None = None
        self._current: _Staged | None = None
        self._headers: dict[str, str] = {}
        self._field = b""
        self._value = b""
        self._name: str | None = None
        self._buffer = bytearray()
        self._parts = 0
        self._field_bytes = 0

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
        self._headers, self._name, self._buffer, self._current = {}, None, bytearray(), None

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value.decode("utf-8", "replace")
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        # header values were decoded as UTF-8 (RFC 7578 §4.2: browsers and curl send raw UTF-8 file names)
        _, options = parse_options_header(self._headers.get("content-disposition", "").encode("utf-8"))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._parts += 1
        if self._parts > MAX_PARTS:
            self._fail(
                422,
                f"The multipart body has more than {MAX_PARTS} parts; at most {MAX_PARTS} are accepted "
                "(form fields and files together, a repeated name counted each time).",
            )
        filename = options.get(b"filename")
        if filename is not None and self._name not in self.limits:
            self._name = None  # a file part no input declares: its bytes are discarded
            return
        if filename is None:
            return
        if self._name in self.files:
            self._fail(422, f"Send exactly one `{self._name}` part.")
        display = _display_name(filename.decode("utf-8", "replace")) or "upload"
        # the staging path keeps only a plain extension (".wav"), whatever the client's name holds
        staged = _Staged(self._name, self.staging(Path(display).suffix), display, self.limits[self._name])
        staged.media_type = _media_type(self._headers.get("content-type", ""))
        staged.handle = staged.path.open("wb")
        self.files[self._name] = self._current = staged

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        current = self._current
        if current is not None:
            current.size += end - start
            if current.size > current.limit:
                self._fail(413, f"The `{current.name}` file exceeds its limit of {current.limit} bytes.")
                return
            chunk = data[start:end]
            current.digest.update(chunk)
            current.handle.write(chunk)
        elif self._name is not None:
            self._field_bytes += end - start
            if len(self._buffer) + end - start > MAX_FIELD_BYTES:
                self._fail(413, f"Form field {self._name!r} exceeds {MAX_FIELD_BYTES} bytes; send files as file parts.")
            if self._field_bytes > MAX_FORM_BYTES:
                self._fail(
                    413,
                    f"The form fields exceed {MAX_FORM_BYTES} bytes together; at most {MAX_FORM_BYTES} are accepted "
                    "(file parts do not count).",
                )
            self._buffer += data[start:end]

    def _part_end(self) -> None:
        if self._current is not None:
            self._current.handle.close()
            self._current = None
        elif self._name and self.error is None:
            self.fields.setdefault(self._name, []).append(self._buffer.decode("utf-8", "replace"))

    def _fail(self, status: int, detail: str) -> NoReturn:
        """Record the first problem and raise it (out of the parser's ``write``: nothing more is read)."""
        if self.error is None:
            title = "Content Too Large" if status == 413 else "Validation Failed"
            self.error = ProblemError(status, detail, title=title)
        raise self.error

    def close(self) -> None:
        for staged in self.files.values():
            if staged.handle is not None and not staged.handle.closed:
                staged.handle.close()

    def remove(self) -> None:
        """Delete every staged file (those handed to the job service are gone already)."""
        self.close()
        for staged in self.files.values():
            with contextlib.suppress(FileNotFoundError):
                staged.path.unlink()


def _display_name(name: str) -> str:
    """A client's file name as display metadata only: no folders, no control characters, ≤ 255 chars."""
    base = PureWindowsPath(PurePosixPath(name).name).name
    return "".join(ch for ch in base if ch.isprintable())[:255]


def _media_type(value: str) -> str:
    """A part's ``Content-Type`` as metadata: ``type/subtype`` (RFC 6838 characters), else octet-stream."""
    essence = value.split(";", 1)[0].strip().lower()
    return (
        essence
        if re.fullmatch(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}", essence)
        else ("application/octet-stream")
    )


def _field_types(model: type[BaseModel], name: str) -> tuple[Any, ...]:
    """The annotation of ``model``'s field ``name`` and, for a union, its branches (empty: no such field)."""
    field_info = model.model_fields.get(name)
    if field_info is None:
        return ()
    return (field_info.annotation, *get_args(field_info.annotation))


def _is_list_field(model: type[BaseModel], name: str) -> bool:
    return any(get_origin(t) in (list, tuple) for t in _field_types(model, name))


def _is_tuple_field(model: type[BaseModel], name: str) -> bool:
    return any(get_origin(t) is tuple for t in _field_types(model, name))


def _is_nullable_field(model: type[BaseModel], name: str) -> bool:
    return type(None) in _field_types(model, name)


def form_to_params(model: type[BaseModel], fields: dict[str, list[str]], *, null_text: bool = False) -> dict[str, Any]:
    """Form fields (or query parameters) -> model input. List fields take repeated fields, a JSON array or
    comma-separated text; other fields take their last value; an empty value means "not given". With
    ``null_text`` (form fields, whose schema keeps the model's null branches), so does the text ``null`` in a
    field that may be null: a form has no null, and that is how JSON null is written into one."""
    params: dict[str, Any] = {}
    for name, values in fields.items():
        reject_nul(values, name)
        values = [v for v in values if v != ""]
        if null_text and values == ["null"] and _is_nullable_field(model, name):
            continue
        if not values:
            continue
        if _is_list_field(model, name) or _is_list_field(JobOptions, name):
            if len(values) == 1 and values[0].lstrip().startswith("["):
                params[name] = load_json(values[0], name)
                continue
            parts = [part.strip() for value in values for part in value.split(",") if part.strip()]
            # A list field holds names (formats, stems, instruments): each once, in order. A tuple is a pair.
            params[name] = parts if _is_tuple_field(model, name) else list(dict.fromkeys(parts))
        else:
            params[name] = values[-1]
    return params


async def receive_multipart(request: Request, state: _UploadState) -> None:
    """Stream a ``multipart/form-data`` body into ``state``. Raises ProblemError (400 malformed, 413 too
    large). The caller removes the staged files (``state.remove()``)."""
    _, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if not boundary:
        raise ProblemError(400, "multipart/form-data needs a boundary parameter.", title="Malformed Multipart Body")
    try:
        parser = MultipartParser(boundary, state.callbacks())
    except Exception as exc:  # e.g. a boundary over 256 bytes
        raise ProblemError(400, f"Malformed multipart body: {exc}", title="Malformed Multipart Body") from exc
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except ProblemError:  # a limit of ``state`` stopped the parser
                raise
            except Exception as exc:  # python_multipart raises its own parse errors
                raise ProblemError(400, f"Malformed multipart body: {exc}", title="Malformed Multipart Body") from exc
            if state.error is not None:
                raise state.error
        parser.finalize()
    finally:
        state.close()
    if state.error is not None:
        raise state.error


def _missing(name: str, detail: str) -> ProblemError:
    return ProblemError(
        422,
        detail,
        title="Validation Failed",
        errors=[{"loc": ["body", name], "msg": "Field required", "type": "missing"}],
    )


def _form_params(spec: EngineSpec, fields: dict[str, list[str]]) -> dict[str, Any]:
    """The request's raw params: the ``params`` JSON part, then the other form fields over it. An empty (or
    blank) ``params`` part means "not given", as an empty form field does."""
    raw: dict[str, Any] = {}
    params_parts = [part for part in fields.pop("params", []) if part.strip()]
    if params_parts:
        loaded = load_json(params_parts[-1], "params")
        if not isinstance(loaded, dict):
            raise RequestValidationError(
                [
                    {
                        "type": "dict_type",
                        "loc": ("body", "params"),
                        "msg": "params must be a JSON object",
                        "input": loaded,
                    }
                ]
            )
        raw.update(loaded)
    raw.update(form_to_params(spec.request_model, fields, null_text=True))
    return raw


async def resolve_inputs(
    request: Request,
    spec: EngineSpec,
    files: dict[str, Any],
    references: dict[str, list[str]],
    principal: Principal,
) -> dict[str, StagedInput]:
    """Each declared input from its file part (``files``: the form's received parts by name) or its upload
    reference, size-checked and probed.

    Raises ProblemError: 422 missing, unknown reference or empty, 413 over the input's limit, or the probe's
    :class:`UploadRejected` status; its ``errors`` name the input (``loc: ["body", name]``).
    """
    settings = request.app.state.settings
    service: JobService = request.app.state.service
    inputs: dict[str, StagedInput] = {}
    for declared in spec.inputs:
        limit = input_limit(settings, spec, declared)
        staged = files.get(declared.name)
        reference = [v for v in references.get(declared.name, []) if v.strip()]
        if staged is not None:
            if staged.size == 0:
                raise _rejected(
                    422, "Validation Failed", declared.name, f"The uploaded `{declared.name}` file is empty."
                )
            path, info, shared = (
                staged.path,
                {
                    "filename": staged.filename,
                    "size_bytes": staged.size,
                    "sha256": staged.digest.hexdigest(),
                },
                False,
            )
        elif reference:
            try:
                upload, path = await anyio.to_thread.run_sync(
                    service.get_upload, reference[-1].strip(), principal.owner
                )
            except UploadNotFound as exc:
                raise ProblemError(
                    422,
                    f"`{declared.name}`: {exc}. Send the file itself, or an id from POST /v1/uploads.",
                    title="Validation Failed",
                    errors=[{"loc": ["body", declared.name], "msg": str(exc), "type": "upload_not_found"}],
                ) from None
            if upload.size_bytes > limit:
                detail = (
                    f"The `{declared.name}` upload {upload.id} has {upload.size_bytes} bytes; its limit is {limit}."
                )
                raise _rejected(413, "Content Too Large", declared.name, detail)
            info = {"filename": upload.filename, "size_bytes": upload.size_bytes, "sha256": upload.sha256}
            info["upload_id"] = upload.id
            shared = True
        else:
            if declared.required:
                raise _missing(
                    declared.name,
                    f"`{declared.name}` is required: a file part, or the id of a POST /v1/uploads file.",
                )
            continue
        try:
            probed = await anyio.to_thread.run_sync(declared.run_probe, path, settings)
        except UploadRejected as exc:
            raise _rejected(exc.status, exc.title, declared.name, exc.detail) from None
        inputs[declared.name] = StagedInput(path, {**probed, **info}, shared=shared)
    return inputs


def _rejected(status: int, title: str, name: str, detail: str) -> ProblemError:
    """A problem with input ``name`` (its ``errors`` entry locates it, as in a batch's 422)."""
    return ProblemError(
        status, detail, title=title, errors=[{"loc": ["body", name], "msg": detail, "type": "upload_rejected"}]
    )


def input_limit(settings: Any, spec: EngineSpec, declared: InputSpec) -> int:
    """Bytes accepted for ``declared``: its own limit, capped by the server-wide ``max_upload_bytes``."""
    section = settings.engine(spec.kind) if spec.settings_model is not None else None
    return min(settings.max_upload_bytes, declared.limit(section))


def _input_schemas(spec: EngineSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The multipart form schema of ``spec``'s submit route and its JSON body schema (inputs as upload ids)."""
    model = spec.request_model
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    form: dict[str, Any] = {}
    body: dict[str, Any] = {}
    for declared in spec.inputs:
        optional = "" if declared.required else ", optional"
        form[declared.name] = {
            "type": "string",
            "format": "binary",
            "description": f"{declared.description} ({declared.kind}{optional}); "
            "or, as a plain field, the id of a file sent with POST /v1/uploads.",
        }
        body[declared.name] = {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "description": f"Optional: the id of a POST /v1/uploads file. {declared.description}",
        }
    required = list(schema.get("required", []))
    options = JobOptions.schema_properties()
    # JSON parts (``encoding`` of the media type: FORM_JSON_PARTS): the whole request, and the metadata object.
    form["params"] = {
        "type": "object",
        "properties": schema.get("properties", {}) | options,
        "additionalProperties": False,
        "description": f"Optional: the request as one JSON object ({model.__name__}); form fields override it.",
    }
    form_options = {
        "priority": options["priority"],
        "metadata": not_null(options["metadata"]),
        "webhook": not_null(options["webhook"]),  # a form field is text, never null
        "webhook_events_filter": not_null(options["webhook_events_filter"]),  # repeated fields (or comma-separated)
    }
    form_schema = {
        "type": "object",
        "properties": form | schema.get("properties", {}) | form_options,
        "required": [i.name for i in spec.inputs if i.required] + required,
        "additionalProperties": False,
    }
    if not spec.inputs:  # beside a binary part, ``not`` and ``if`` break Schemathesis' generation (4.32)
        form_schema |= cross_field_rules(schema)
    json_schema = {
        "type": "object",
        "properties": schema.get("properties", {}) | body | options,
        "required": required,
        "additionalProperties": False,
    } | cross_field_rules(schema)
    return form_schema, json_schema


FORM_JSON_PARTS = {name: {"contentType": "application/json"} for name in ("params", "metadata")}
"""Form parts that hold JSON (OpenAPI's multipart ``encoding``): the request object and the metadata object."""
CROSS_FIELD_KEYWORDS = ("not", "if", "then", "else", "dependentRequired", "dependentSchemas")


def cross_field_rules(schema: dict[str, Any]) -> dict[str, Any]:
    """The keywords of a request model's schema that relate its fields (``not``, ``if``/``then``, …: set with
    ``json_schema_extra``), carried into the submit body schemas built from its properties."""
    return {key: schema[key] for key in CROSS_FIELD_KEYWORDS if key in schema}


def _json_references(spec: EngineSpec, raw: Any) -> dict[str, list[str]]:
    """Pop each declared input's upload id out of a JSON body (``raw`` is left with the request's fields).
    Raises RequestValidationError (422) for an id that is not a string."""
    references: dict[str, list[str]] = {}
    if not isinstance(raw, dict):
        return references
    for declared in spec.inputs:
        if declared.name not in raw:
            continue
        value = raw.pop(declared.name)
        if not isinstance(value, str) or not value.strip():
            raise RequestValidationError(
                [
                    {
                        "type": "string_type",
                        "loc": ("body", declared.name),
                        "msg": f"`{declared.name}` must be the id (a string) of a POST /v1/uploads file; "
                        "to send the file itself, use multipart/form-data",
                        "input": value,
                    }
                ]
            )
        references[declared.name] = [value]
    return references


def upload_submit_route(router: APIRouter, spec: EngineSpec) -> None:
    form_schema, json_schema = _input_schemas(spec)
    takes_json = not any(declared.required for declared in spec.inputs)

    async def submit(
        request: Request,
        prefer: PreferHeader = None,
        idempotency_key: IdempotencyKeyHeader = None,
        principal: Principal = Depends(get_principal),
    ) -> Response:
        _check_intake(request)
        _check_idempotency_key(idempotency_key)
        await _check_capacity(request)
        settings = request.app.state.settings
        limits = {declared.name: input_limit(settings, spec, declared) for declared in spec.inputs}
        service: JobService = request.app.state.service
        state = _UploadState(limits, service.staging_path)
        try:
            if _request_media_type(request) in JSON_TYPES:
                raw = load_json(await request.body(), "body")
                references = _json_references(spec, raw)
            else:
                await receive_multipart(request, state)
                references = {declared.name: state.fields.pop(declared.name, []) for declared in spec.inputs}
                raw = _form_params(spec, state.fields)
            raw, options = split_options(raw, WebhookPolicy.from_settings(settings))
            params = await validate_params(request, spec, raw)
            inputs = await resolve_inputs(request, spec, state.files, references, principal)
            facts = {name: staged.info for name, staged in inputs.items()}
            warnings = await anyio.to_thread.run_sync(spec.check_inputs, params, facts, settings)
            if warnings:
                log_fields(request).setdefault("warnings", []).extend(warnings)
            view, created = await _submit(request, spec, params, principal, idempotency_key, inputs, options)
        finally:
            state.remove()  # submit() moved them into the job folder; anything left is an aborted request
        return await _respond(request, service, view, created, principal, prefer)

    names = ", ".join(f"`{i.name}`" for i in spec.inputs)
    content: dict[str, Any] = {"multipart/form-data": {"schema": form_schema, "encoding": FORM_JSON_PARTS}}
    how = (
        f"`multipart/form-data`: {names} (a file part, or a field holding a POST /v1/uploads id), plus the "
        "fields below (or one `params` JSON part)."
    )
    if takes_json:
        json_content: dict[str, Any] = {"schema": json_schema}
        if spec.example:
            json_content["examples"] = {"default": {"summary": spec.summary, "value": spec.example}}
        content = {"application/json": json_content} | content
        how = f"`application/json` (the fields below; {names} as the id of a POST /v1/uploads file), or {how}"
    _add_submit_route(
        router,
        spec,
        submit,
        how + " Answers 202 with the queued job.",
        (JSON_TYPES if takes_json else ()) + UPLOAD_TYPES,
        content,
    )


def _query_parameters(spec: EngineSpec) -> list[dict[str, Any]]:
    """OpenAPI query parameters of a quick route: the request model's fields (list fields repeat or take
    comma-separated values)."""
    schema = spec.request_model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": prop.get("description", ""),
            "schema": _as_the_query_reads_it({k: v for k, v in prop.items() if k not in ("description", "title")}),
            **({"explode": True, "style": "form"} if _is_list_field(spec.request_model, name) else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _as_the_query_reads_it(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema as the route reads it: a ``pattern`` also admits the empty value (which means
    "not given"), and a list of names (``enum`` items) each repeated value may hold several, comma-separated."""
    if "pattern" in schema:
        return schema | {"pattern": f"^$|{schema['pattern']}"}
    items = schema.get("items", {})
    if schema.get("type") == "array" and "enum" in items:
        name = "(?:" + "|".join(re.escape(str(value)) for value in items["enum"]) + ")"
        part = rf"[ \t]*(?:{name}[ \t]*)?"
        return schema | {"items": {"type": "string", "pattern": f"^{part}(?:,{part})*$"}}
    return schema


def quick_route(router: APIRouter, spec: EngineSpec) -> None:
    """``GET /v1/<route>/<quick.path>?field=value…``: submit a small job, wait for it and answer its file
    (:class:`cadenza.engines.base.QuickSpec`); 202 with the job if it is not done within
    ``prefer_wait_max_s``; a failed job is a 422 problem carrying the job's error."""
    quick = spec.quick
    assert quick is not None

    async def quick_submit(request: Request, principal: Principal = Depends(get_principal)) -> Response:
        _check_intake(request)
        await _check_capacity(request)
        settings = request.app.state.settings
        fields = {name: request.query_params.getlist(name) for name in request.query_params}
        params = await validate_params(request, spec, form_to_params(spec.request_model, fields))
        check = resolve(quick.check)
        if check is not None:
            await anyio.to_thread.run_sync(check, params, settings)
        await anyio.to_thread.run_sync(spec.check_inputs, params, {}, settings)  # no inputs: defaults complete
        service: JobService = request.app.state.service
        view, _ = await _submit(request, spec, params, principal, None)
        view = await service.wait(view.id, principal.owner, timeout_s=settings.prefer_wait_max_s)
        location = f"/v1/jobs/{view.id}"
        if view.status not in FINAL:
            body = job_out(view).model_dump_json()
            return Response(body, status_code=202, headers={"Location": location}, media_type="application/json")
        if view.status != "completed":
            error = view.error.message if view.error else f"the job was {view.status}"
            raise ProblemError(422, f"Job {view.id} {view.status}: {error}", title="Job Failed")
        name = next((o.name for o in view.outputs if o.name.endswith(quick.suffix)), None)
        if name is None:
            raise ProblemError(422, f"Job {view.id} wrote no {quick.suffix} file.", title="Job Failed")
        output, path = await anyio.to_thread.run_sync(service.output_file, view.id, principal.owner, name)
        headers = {
            "Content-Location": f"{location}/files/{name}",
            "Link": f'<{location}>; rel="related"',
            "ETag": f'"{output.sha256}"',
        }
        return FileResponse(path, media_type=output.media_type, filename=output.download_name, headers=headers)

    router.add_api_route(
        f"/v1/{spec.route}/{quick.path}",
        quick_submit,
        methods=["GET"],
        summary=f"{spec.summary} Quick synchronous form",
        description=quick.description
        + "\n\nThe request's fields are query parameters. The job is an ordinary one (listed, owned, rate-limited); "
        "the answer is its file, or 202 with the job if it takes longer than the server's wait limit.",
        operation_id=f"quick_{spec.kind}",
        tags=[spec.kind],
        response_class=FileResponse,
        openapi_extra={"parameters": _query_parameters(spec)},
        responses={
            200: {"description": f"The job's {quick.suffix} output.", "content": {quick.media_type: {}}},
            202: {"model": JobOut, "description": "Still running after the wait limit: the job."},
        }
        | responses(401, 422, 429, 503),
    )


def build_router(engines: list[EngineSpec]) -> APIRouter:
    """One submit route per engine: JSON for engines without declared inputs, multipart for the others;
    plus the quick ``GET`` form where an engine declares one."""
    router = APIRouter()
    for spec in engines:
        if spec.inputs:
            upload_submit_route(router, spec)
        else:
            json_submit_route(router, spec)
        if spec.quick is not None:
            quick_route(router, spec)
    return router
