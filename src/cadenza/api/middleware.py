"""Pure ASGI middleware: request id + access log + HTTP metrics, access control (API key + rate limit),
request body limits (``Content-Length`` checked up front, ``http.request`` bytes counted while streaming) and
security headers (``nosniff`` and ``no-referrer`` everywhere, a Content-Security-Policy on the web pages).
"""

from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import structlog
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadenza.api.auth import AuthError, is_public, resolve_principal
from cadenza.api.problems import problem_response

log = structlog.get_logger("cadenza.api")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_BAD = re.compile(r"[^A-Za-z0-9._:\-]")
REQUEST_ID_MAX = 128
#: Paths without rate limits (probes must never be throttled).
RATE_EXEMPT = frozenset({"/health", "/ready"})


def clean_request_id(value: str | None) -> str:
    """Keep ``[A-Za-z0-9._:-]``, at most 128 characters; a fresh UUID4 hex when nothing is left."""
    cleaned = _REQUEST_ID_BAD.sub("", value or "")[:REQUEST_ID_MAX]
    return cleaned or uuid.uuid4().hex


class HttpMetrics:
    """Request counter and latency histogram by method, route template and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "cadenza_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "cadenza_http_request_duration_seconds",
            "HTTP request latency (until the response started streaming finished)",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )


LOG_FIELDS = "log_fields"


def log_fields(request: Any) -> dict[str, Any]:
    """Fields a route adds to its request's one access-log line (``job_id``, ``kind``, ``warnings``)."""
    return request.scope.setdefault("state", {}).setdefault(LOG_FIELDS, {})


class RequestContextMiddleware:
    """Assigns ``X-Request-ID``, binds it (and the key id) to log lines, writes one access line per
    request, records HTTP metrics and turns unhandled exceptions into a 500 problem (no traceback)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = clean_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            if not response_started:
                response = problem_response(
                    scope["path"], 500, f"An internal error occurred; quote request id {request_id}."
                )
                await response(scope, receive, send_with_id)
        finally:
            duration_s = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(duration_s)
            principal = scope["state"].get("principal")
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(duration_s * 1000, 2),
                key_id=getattr(principal, "key_id", None),
                client=(scope.get("client") or (None,))[0],
                **scope["state"].get(LOG_FIELDS, {}),
            )


class AccessControlMiddleware:
    """API key check (401 + ``WWW-Authenticate: Bearer``) then a moving-window rate limit per key, or per
    client IP without keys (429 + ``Retry-After``); ``RateLimit-*`` headers on every limited response."""

    def __init__(self, app: ASGIApp, settings: Any) -> None:
        self.app, self.settings = app, settings
        self._limit_text, self.limit = settings.rate_limit, parse(settings.rate_limit)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def _current_limit(self, scope: Scope) -> Any:
        """The rate limit of the app's current settings (a hot reload may have changed it)."""
        text = getattr(getattr(scope.get("app"), "state", None), "settings", self.settings).rate_limit
        if text != self._limit_text:
            self._limit_text, self.limit = text, parse(text)
        return self.limit

    def _hit(self, identity: str, path: str) -> tuple[dict[str, str], Any]:
        """Count one request of ``identity``: (RateLimit-* headers, a 429 problem response or None)."""
        allowed = self.limiter.hit(self.limit, identity)
        stats = self.limiter.get_window_stats(self.limit, identity)
        reset_s = max(0, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Limit": str(self.limit.amount),
            "RateLimit-Remaining": str(max(0, stats.remaining)),
            "RateLimit-Reset": str(reset_s),
        }
        if allowed:
            return headers, None
        retry_s = max(1, reset_s)
        detail = f"Rate limit of {self.limit} exceeded; retry in {retry_s} s."
        response = problem_response(
            path, 429, detail, title="Too Many Requests", headers={**headers, "Retry-After": str(retry_s)}
        )
        return headers, response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        self._current_limit(scope)
        state = scope.setdefault("state", {})
        client = (scope.get("client") or ("unknown",))[0]
        if self.settings.auth_enabled and not is_public(path):
            service = scope["app"].state.service
            authorization = Headers(scope=scope).get("authorization")
            try:
                principal = await anyio.to_thread.run_sync(resolve_principal, self.settings, service, authorization)
            except AuthError as exc:
                # Failed attempts count against the client IP, so keys cannot be guessed at full speed.
                headers, limited = self._hit(f"ip:{client}", path)
                response = limited or problem_response(
                    path,
                    401,
                    str(exc),
                    title="Unauthorized",
                    headers={**headers, "WWW-Authenticate": 'Bearer realm="cadenza"'},
                )
                await response(scope, receive, send)
                return
            state["principal"] = principal
            structlog.contextvars.bind_contextvars(key_id=principal.key_id)
        if path in RATE_EXEMPT:
            await self.app(scope, receive, send)
            return

        principal = state.get("principal")
        identity = f"key:{principal.key_id}" if principal is not None and principal.key_id else f"ip:{client}"
        headers, limited = self._hit(identity, path)
        if limited is not None:
            await limited(scope, receive, send)
            return

        await self.app(scope, receive, sending_headers(send, headers))


def sending_headers(send: Send, headers: dict[str, str]) -> Send:
    """``send`` that sets ``headers`` on the response's start message."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            mutable = MutableHeaders(scope=message)
            for name, value in headers.items():
                mutable[name] = value
        await send(message)

    return send_with_headers


class BodyTooLarge(HTTPException):
    """The request body exceeded its limit while streaming (an HTTPException so FastAPI passes it through)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {limit} bytes.")


class BodyLimitMiddleware:
    """413 problem before the whole body is read: ``Content-Length`` over the limit is refused without
    reading; otherwise ``http.request`` bytes are counted and reading stops at the limit.

    Multipart bodies to ``upload_paths`` (submit routes of upload engines) get ``upload_limit``; everything
    else, JSON bodies to those routes included, ``json_limit``.
    """

    def __init__(self, app: ASGIApp, json_limit: int, upload_limit: int, upload_paths: frozenset[str]) -> None:
        self.app, self.json_limit, self.upload_limit, self.upload_paths = app, json_limit, upload_limit, upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        multipart = headers.get("content-type", "").lower().lstrip().startswith("multipart/")
        limit = self.upload_limit if multipart and scope["path"] in self.upload_paths else self.json_limit
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            detail = f"The request body ({length} bytes) exceeds the limit of {limit} bytes."
            await problem_response(scope["path"], 413, detail, title="Content Too Large")(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, receive_limited, send)


class ReloadableCORSMiddleware:
    """Starlette's ``CORSMiddleware`` for the app's current ``cors_origins`` (rebuilt when a hot reload
    changes them; no CORS headers at all while the list is empty)."""

    def __init__(self, app: ASGIApp, settings: Any, **options: Any) -> None:
        self.app, self.settings, self.options = app, settings, options
        self._origins: list[str] | None = None
        self._cors: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = getattr(getattr(scope.get("app"), "state", None), "settings", self.settings)
        origins = list(settings.cors_origins)
        if origins != self._origins:
            self._origins = origins
            self._cors = CORSMiddleware(self.app, allow_origins=origins, **self.options) if origins else None
        await (self._cors or self.app)(scope, receive, send)


@dataclass(frozen=True)
class PagePolicy:
    """The ``Content-Security-Policy`` of a web page and its assets: the exact ``paths`` and every path under
    ``prefixes`` (each ending in ``/``)."""

    csp: str
    paths: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    def covers(self, path: str) -> bool:
        """True when ``path`` is one of the page's paths or under one of its prefixes."""
        return path in self.paths or path.startswith(self.prefixes)


#: Sent on every response: no MIME sniffing (a file is what its ``Content-Type`` says), no ``Referer`` leaves.
COMMON_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class SecurityHeadersMiddleware:
    """:data:`COMMON_SECURITY_HEADERS` on every response; on the paths of a :class:`PagePolicy` (the first that
    covers the path) its ``Content-Security-Policy`` and ``X-Frame-Options: DENY`` (never framed: the policies
    say ``frame-ancestors 'none'`` too, for browsers that read only one of them)."""

    def __init__(self, app: ASGIApp, policies: list[PagePolicy]) -> None:
        self.app, self.policies = app, policies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(COMMON_SECURITY_HEADERS)
        policy = next((p for p in self.policies if p.covers(scope["path"])), None)
        if policy is not None:
            headers.update({"Content-Security-Policy": policy.csp, "X-Frame-Options": "DENY"})

        await self.app(scope, receive, sending_headers(send, headers))
