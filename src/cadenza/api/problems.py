"""RFC 9457 problem details (``application/problem+json``) for every error the API returns.

Source: RFC 9457 "Problem Details for HTTP APIs" (https://www.rfc-editor.org/rfc/rfc9457).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import get_route_path
from starlette.staticfiles import StaticFiles

from cadenza.api import examples
from cadenza.engines.base import EngineInputError, EngineProblem

PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Problem types are URNs (RFC 9457 §3.1.1 allows non-resolvable URIs): ``urn:cadenza:problem:<slug>``.
TYPE_BASE = "urn:cadenza:problem:"


#: ``Retry-After`` (s) of a 409 for the files of a job still queued or processing.
NOT_READY_RETRY_S = 5

#: RFC 9110 §15 names where Python's ``HTTPStatus`` phrases are the older RFC 7231 ones.
_RFC9110_TITLES = {413: "Content Too Large", 414: "URI Too Long", 422: "Unprocessable Content"}


def status_title(status: int) -> str:
    """The RFC 9110 reason phrase of ``status`` (``413`` -> ``"Content Too Large"``)."""
    return _RFC9110_TITLES.get(status) or HTTPStatus(status).phrase


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Path of the offending field, e.g. `['body', 'bars']`.")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.PROBLEM_NOT_FOUND, examples.PROBLEM_VALIDATION]})

    type: str = Field(examples=["urn:cadenza:problem:job-not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str | None = Field(None, examples=["No job 3f0c…"])
    instance: str | None = Field(None, examples=["/v1/jobs/3f0c…"])
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem (status, title, detail, extra headers)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        slug: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.errors = status, detail, headers or {}, errors
        self.title = title or status_title(status)
        self.slug = slug or self.title.lower().replace(" ", "-")


def problem_body(
    status: int,
    detail: str | None,
    *,
    instance: str | None,
    title: str | None = None,
    slug: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    title = title or status_title(status)
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors is not None:
        body["errors"] = errors
    return body


def problem_response(
    request_path: str | None,
    status: int,
    detail: str | None,
    *,
    title: str | None = None,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body = problem_body(status, detail, instance=request_path, title=title, slug=slug, errors=errors)
    return ProblemResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


class ProblemResponse(JSONResponse):
    """A problem rendered as ASCII JSON: text echoed from a request (a lone UTF-16 surrogate, say) is
    escaped instead of failing to encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def field_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic/FastAPI error dicts -> ``[{loc, msg, type}]`` (no input echo: it may be large or secret)."""
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errors
    ]


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem answers for the given statuses."""
    return {
        status: {
            "model": Problem,
            "description": status_title(status),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _routes(app: Any) -> list[Any]:
    """The app's routes with their full paths: newer FastAPI versions keep included routers nested and list their
    routes through ``iter_route_contexts``; older versions copy them into ``app.router.routes``."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return list(app.router.routes)
    return list(iter_route_contexts(app.router.routes))


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the path this request names (RFC 9110 §15.5.6: a 405 lists them all; Starlette lists
    only those of the first route matching the path). Where a concrete path and a templated one both match
    (``/v1/jobs/cancel`` and ``/v1/jobs/{job_id}``), the concrete one is the path (as OpenAPI 3.1 §4.8.8
    matches them): its routes' methods are the answer. A mounted static folder answers GET and HEAD."""
    scope = request.scope  # inside a mount, root_path holds the mount's prefix: the app's is app_root_path
    root_path = scope.get("app_root_path", scope.get("root_path", ""))
    route_path = get_route_path({"path": scope["path"], "root_path": root_path})
    methods: dict[str, set[str]] = {}  # path template -> its methods
    for route in _routes(request.app):
        regex = getattr(route, "path_regex", None)
        if regex is None or not regex.match(route_path):
            continue
        declared = getattr(route, "methods", None)
        if declared is None:  # a mount
            declared = {"GET", "HEAD"} if isinstance(getattr(route, "app", None), StaticFiles) else set(_METHODS)
        template = getattr(route, "path_format", None) or getattr(route, "path", "")
        methods.setdefault(template, set()).update(declared)
    if not methods:
        return []
    # segment by segment, a literal segment before a {parameter}
    path = min(methods, key=lambda template: ["{" in segment for segment in template.split("/")])
    return [method for method in _METHODS if method in methods[path]]


def install_handlers(app: FastAPI) -> None:
    """Map framework and domain exceptions to problem responses."""
    from cadenza.jobs import IdempotencyConflict, JobGone, JobNotFound, JobNotReady, JobNotRetryable, OutputNotFound
    from cadenza.jobs.views import BatchNotFound

    def path(request: Request) -> str:
        return request.url.path

    async def problem_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(
            path(request),
            exc.status,
            exc.detail,
            title=exc.title,
            slug=exc.slug,
            headers=exc.headers,
            errors=exc.errors,
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route matches {request.method} {path(request)}."
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            detail = f"Method {request.method} is not allowed on {path(request)}."
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(path(request), exc.status_code, detail, headers=headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        allowed = _allowed_methods(request)
        if allowed and request.method not in allowed:
            # Starlette ran a templated route whose parameter refused the segment (GET /v1/jobs/cancel reached
            # /v1/jobs/{job_id}), but the path named is a concrete one without this method: 405, as for any other.
            detail = f"Method {request.method} is not allowed on {path(request)}."
            return problem_response(path(request), 405, detail, headers={"Allow": ", ".join(allowed)})
        errors = field_errors(exc.errors())
        summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:10])
        return problem_response(
            path(request), 422, f"The request is invalid: {summary}", title="Validation Failed", errors=errors
        )

    def mapped(status: int, title: str | None = None):  # noqa: ANN202
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return problem_response(path(request), status, str(exc) or title, title=title)

        return handler

    async def engine_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EngineProblem)
        return problem_response(path(request), exc.status, exc.detail, title=exc.title)

    app.add_exception_handler(ProblemError, problem_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(JobNotFound, mapped(404, "Job Not Found"))
    app.add_exception_handler(BatchNotFound, mapped(404, "Batch Not Found"))
    app.add_exception_handler(OutputNotFound, mapped(404, "File Not Found"))

    async def not_ready(request: Request, exc: Exception) -> JSONResponse:
        # RFC 9110 §10.2.3 allows Retry-After on any status; a running job's files come later.
        headers = {"Retry-After": str(NOT_READY_RETRY_S)}
        return problem_response(path(request), 409, str(exc), title="Job Not Completed", headers=headers)

    app.add_exception_handler(JobNotReady, not_ready)
    app.add_exception_handler(JobGone, mapped(410, "Files Gone"))
    app.add_exception_handler(JobNotRetryable, mapped(409, "Job Cannot Be Retried"))
    app.add_exception_handler(IdempotencyConflict, mapped(422, "Idempotency Key Reused"))
    app.add_exception_handler(EngineInputError, mapped(422, "Request Cannot Be Served"))
    app.add_exception_handler(EngineProblem, engine_problem)
