"""The FastAPI application factory.

``create_app(settings, start_workers=True)``: its lifespan creates the ``JobService`` (database, files,
migrations) and, if ``start_workers`` and ``settings.workers > 0``, the executor of ``settings.executor``
(``app.state.executor``); without one it runs a ``Maintenance`` thread itself, so jobs of dead remote
workers are still swept. Routes come from the registry: a submit route per engine, each engine's own
router, its OpenAPI examples. ``app.state.draining`` (set by ``cadenza serve`` on SIGTERM) makes submit
routes answer 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
import structlog
from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import CollectorRegistry

import cadenza
from cadenza.api import examples
from cadenza.api import openapi as openapi_extras
from cadenza.api.auth import DOCS_ASSETS_PATH, PUBLIC_PATHS, STUDIO_ASSETS_PATH
from cadenza.api.deps import reject_unknown_query
from cadenza.api.middleware import (
    RATE_EXEMPT,
    AccessControlMiddleware,
    BodyLimitMiddleware,
    HttpMetrics,
    PagePolicy,
    ReloadableCORSMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from cadenza.api.problems import install_handlers
from cadenza.api.reload import snapshot_catalogues
from cadenza.api.routes import admin, batches, docs, files, health, jobs, models, studio, submit, uploads
from cadenza.engines import registry as engine_registry
from cadenza.engines.base import resolve
from cadenza.jobs import JobsCollector, JobService, Maintenance, create_executor
from cadenza.jobs.webhooks import WebhookDispatcher
from cadenza.settings import Settings, load_settings

log = structlog.get_logger("cadenza.api")

DESCRIPTION = """Self-hosted music AI behind one job API.

Submit a job to an engine ({routes}), follow it (`GET /v1/jobs/{{id}}`, or its Server-Sent Events at
`/v1/jobs/{{id}}/events`), then download its files (`/v1/jobs/{{id}}/files/{{name}}`). Files an engine
takes can be sent with the submit or once with `POST /v1/uploads` and referenced by id.
Errors are RFC 9457 `application/problem+json`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    start_workers: bool = True,
    settings_source: Callable[[], Settings] | None = None,
) -> FastAPI:
    """Build the app. Nothing touches the database or starts processes until the lifespan runs.

    ``settings_source`` re-reads the configuration for a hot reload (:mod:`cadenza.api.reload`); by
    default :func:`cadenza.settings.load_settings` when ``settings`` is None, else ``settings`` itself.
    """
    if settings_source is None:
        settings_source = load_settings if settings is None else (lambda: settings)
    settings = settings if settings is not None else settings_source()
    registry = CollectorRegistry()
    engines = engine_registry.of(settings).engines()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await anyio.to_thread.run_sync(JobService, settings)
        try:  # an invalid catalogue is an engine's problem (its requests say so), not the server's
            app.state.catalogues = await anyio.to_thread.run_sync(snapshot_catalogues, settings)
        except ValueError as exc:
            log.error("catalogue_invalid", error=str(exc))
            app.state.catalogues = {}
        executor = None
        maintenance = None
        # celery: the workers are `cadenza worker` processes elsewhere; this server only sends them jobs
        if start_workers and (settings.workers > 0 or settings.executor == "celery"):
            executor = create_executor(settings, service)
            await anyio.to_thread.run_sync(executor.start)
        else:
            maintenance = Maintenance(service)  # the executor runs its own
            maintenance.start()
        app.state.service, app.state.executor = service, executor
        dispatcher = await anyio.to_thread.run_sync(WebhookDispatcher, service)
        dispatcher.start()
        collector = JobsCollector(service, executor)
        registry.register(collector)
        log.info("api_started", workers=settings.workers if executor else 0, database=_safe_url(settings.database_url))
        try:
            yield
        finally:
            registry.unregister(collector)
            await anyio.to_thread.run_sync(dispatcher.stop)
            if maintenance is not None:
                await anyio.to_thread.run_sync(maintenance.stop)
            if executor is not None:
                timeout_s = 0 if app.state.draining else settings.shutdown_timeout_s
                await anyio.to_thread.run_sync(executor.drain, timeout_s)
                await anyio.to_thread.run_sync(executor.stop)
            log.info("api_stopped")

    routes = ", ".join(f"`POST /v1/{spec.route}`" for spec in engines)
    # FastAPI's /docs and /redoc load their scripts from a CDN and start Swagger UI with an inline script;
    # routes/docs.py serves fastapi-offline's bundles from the installed package and starts it from a file,
    # so the docs work without internet and under their Content-Security-Policy.
    app = FastAPI(
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # no OAuth2 scheme: API keys are bearer tokens
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
        title="Cadenza",
        version=cadenza.__version__,
        description=DESCRIPTION.format(routes=routes),
        lifespan=lifespan,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
        dependencies=[Depends(reject_unknown_query)],
    )
    app.state.settings = settings
    app.state.settings_source = settings_source
    app.state.catalogues = None
    app.state.registry = registry
    app.state.draining = False
    app.state.service = None
    app.state.executor = None

    install_handlers(app)
    app.include_router(submit.build_router(engines))
    app.include_router(uploads.router)
    app.include_router(batches.router)
    app.include_router(jobs.router)
    app.include_router(files.router)
    app.include_router(models.router)
    app.include_router(admin.router)
    for spec in engines:
        if spec.router is not None:
            app.include_router(resolve(spec.router))
    app.include_router(health.router)
    app.include_router(studio.router)
    app.mount(STUDIO_ASSETS_PATH, studio.studio_files(), name="studio")
    app.include_router(docs.router)
    app.mount(DOCS_ASSETS_PATH, docs.docs_files(), name="docs-assets")
    _install_openapi(app, engines)

    # Added last = outermost: security headers, CORS, request id/logging/metrics, key check + rate limit,
    # body limit.
    upload_paths = frozenset(["/v1/uploads", *(f"/v1/{spec.route}" for spec in engines if spec.inputs)])
    input_limits = [submit.input_limit(settings, spec, declared) for spec in engines for declared in spec.inputs]
    biggest = sum(sorted(input_limits, reverse=True)[:4])  # a submit with several file parts
    app.add_middleware(
        BodyLimitMiddleware,
        json_limit=settings.max_body_bytes,
        upload_limit=max(settings.max_upload_bytes, biggest) + submit.FORM_OVERHEAD_BYTES,
        upload_paths=upload_paths,
    )
    app.add_middleware(AccessControlMiddleware, settings=settings)
    app.add_middleware(RequestContextMiddleware, metrics=HttpMetrics(registry))
    app.add_middleware(
        ReloadableCORSMiddleware,
        settings=settings,
        allow_methods=["GET", "HEAD", "POST", "DELETE"],
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
            "Content-Disposition",
            "ETag",
        ],
    )
    app.add_middleware(
        SecurityHeadersMiddleware,
        policies=[
            PagePolicy(studio.CONTENT_SECURITY_POLICY, frozenset({"/"}), (STUDIO_ASSETS_PATH + "/",)),
            PagePolicy(docs.SWAGGER_UI_CSP, frozenset({"/docs"}), (DOCS_ASSETS_PATH + "/",)),
            PagePolicy(docs.REDOC_CSP, frozenset({"/redoc"})),
        ],
    )
    return app


def _install_openapi(app: FastAPI, engines: list) -> None:  # type: ignore[type-arg]
    """The OpenAPI document plus each engine's request schema and its real-run examples."""

    def openapi() -> dict:  # type: ignore[type-arg]
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                license_info=app.license_info,
            )
            examples.add_engine_examples(document, engines)
            openapi_extras.complete(document, engines, app.state.settings)
            _add_security(document, app.state.settings.auth_enabled)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_security(document: dict, auth_enabled: bool) -> None:  # type: ignore[type-arg]
    """Declare the bearer API key scheme; with ``auth_enabled`` every operation but the public ones
    (:data:`cadenza.api.auth.PUBLIC_PATHS`) requires it (OpenAPI 3.1 §4.8.10 and §4.8.30)."""
    document.setdefault("components", {}).setdefault("securitySchemes", {})["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`cadenza keys create`) or the `admin_key` setting, as "
        "`Authorization: Bearer <key>`. Needed only when the server runs with `auth_enabled`; model "
        "load/unload then needs the admin key.",
    }
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            if path not in RATE_EXEMPT:  # the rate limit answers any other route
                answers.setdefault("429", {"description": "Too Many Requests", "content": problem})
            if auth_enabled:
                operation["security"] = [] if path in PUBLIC_PATHS else [{"apiKey": []}]
                if path not in PUBLIC_PATHS:
                    answers.setdefault("401", {"description": "Unauthorized", "content": problem})


def _safe_url(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
