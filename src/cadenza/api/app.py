"""The FastAPI application factory.

``create_app(settings, start_workers=True)``: its lifespan creates the ``JobService`` (database, files)
and, if ``start_workers`` and ``settings.workers > 0``, a local ``WorkerPool``; both live on ``app.state``.
``app.state.draining`` (set by ``cadenza serve`` on SIGTERM) makes submit routes answer 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.middleware.cors import CORSMiddleware

import cadenza
from cadenza.api.middleware import (
    AccessControlMiddleware,
    BodyLimitMiddleware,
    HttpMetrics,
    RequestContextMiddleware,
)
from cadenza.api.problems import install_handlers
from cadenza.api.routes import files, health, jobs, models, styles, submit
from cadenza.engines.registry import all_engines
from cadenza.jobs import JobsCollector, JobService, WorkerPool
from cadenza.settings import Settings, load_settings

log = structlog.get_logger("cadenza.api")

DESCRIPTION = """Self-hosted music AI behind one job API.

Submit a job (`POST /v1/drums`, `POST /v1/separations`), follow it (`GET /v1/jobs/{id}`, or its
Server-Sent Events at `/v1/jobs/{id}/events`), then download its files (`/v1/jobs/{id}/files/{name}`).
Errors are RFC 9457 `application/problem+json`.
"""


def create_app(settings: Settings | None = None, *, start_workers: bool = True) -> FastAPI:
    """Build the app. Nothing touches the database or starts processes until the lifespan runs."""
    settings = settings if settings is not None else load_settings()
    registry = CollectorRegistry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await anyio.to_thread.run_sync(JobService, settings)
        pool = None
        if start_workers and settings.workers > 0:
            pool = WorkerPool(settings, service)
            await anyio.to_thread.run_sync(pool.start)
        app.state.service, app.state.pool = service, pool
        collector = JobsCollector(service, pool)
        registry.register(collector)
        log.info("api_started", workers=settings.workers if pool else 0, database=_safe_url(settings.database_url))
        try:
            yield
        finally:
            registry.unregister(collector)
            if pool is not None:
                await anyio.to_thread.run_sync(pool.drain, 0 if app.state.draining else settings.shutdown_timeout_s)
                await anyio.to_thread.run_sync(pool.stop)
            log.info("api_stopped")

    app = FastAPI(
        title="Cadenza",
        version=cadenza.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.draining = False
    app.state.service = None
    app.state.pool = None

    install_handlers(app)
    engines = all_engines()
    app.include_router(submit.build_router(engines))
    app.include_router(jobs.router)
    app.include_router(files.router)
    app.include_router(models.router)
    if any(spec.kind == "drums" for spec in engines):
        app.include_router(styles.router)
    app.include_router(health.router)

    # Added last = outermost: CORS, request id/logging/metrics, key check + rate limit, body limit.
    upload_paths = frozenset(f"/v1/{spec.route}" for spec in engines if spec.accepts_upload)
    app.add_middleware(
        BodyLimitMiddleware,
        json_limit=settings.max_body_bytes,
        upload_limit=settings.max_upload_bytes + submit.FORM_OVERHEAD_BYTES,
        upload_paths=upload_paths,
    )
    app.add_middleware(AccessControlMiddleware, settings=settings)
    app.add_middleware(RequestContextMiddleware, metrics=HttpMetrics(registry))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "Prefer",
                "Last-Event-ID",
                "X-Request-ID",
            ],
            expose_headers=[
                "Location",
                "X-Request-ID",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "Retry-After",
                "Preference-Applied",
                "Content-Range",
                "ETag",
            ],
        )
    return app


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
