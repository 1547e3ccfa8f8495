"""Probes and metrics: ``GET /health`` (liveness), ``GET /ready`` (readiness), ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

router = APIRouter(tags=["operations"])


class Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    """``status`` is ``ready`` when every entry of ``checks`` (the job system: database, disk, workers,
    intake) is ok; ``engines`` reports each engine (e.g. its default model's weights) without making the
    whole server unready: a job of an engine that is not ready fails with a clear error."""

    status: str
    checks: dict[str, Check]
    engines: dict[str, Check] = {}


@router.get("/health", summary="Liveness (no I/O)")
def health() -> dict[str, str]:
    return {"status": "ok"}


def readiness_checks(app_state: Any) -> dict[str, Check]:
    """Database, free disk, workers, intake (blocking: run in a thread)."""
    settings, service, pool = app_state.settings, app_state.service, getattr(app_state, "executor", None)
    checks: dict[str, Check] = {}
    try:
        service.ping()
        checks["database"] = Check(ok=True, detail="SELECT 1 ok")
    except Exception as exc:  # any driver error means not ready
        checks["database"] = Check(ok=False, detail=f"{type(exc).__name__}: {exc}")

    files_dir = Path(settings.files_dir)
    free_mb = shutil.disk_usage(files_dir if files_dir.exists() else files_dir.parent).free // (1024 * 1024)
    checks["disk"] = Check(
        ok=free_mb >= settings.min_free_disk_mb, detail=f"{free_mb} MB free, need {settings.min_free_disk_mb} MB"
    )

    if pool is not None and hasattr(pool, "ping_broker"):  # a distributed executor: its broker and live workers
        try:
            pool.ping_broker()
            checks["broker"] = Check(ok=True, detail="PING ok")
        except Exception as exc:
            checks["broker"] = Check(ok=False, detail=f"{type(exc).__name__}: {exc}")
        status = pool.status()
        serving = ", ".join(f"{queue}: {n}" for queue, n in status.get("queues", {}).items())
        checks["workers"] = Check(
            ok=status.get("alive", 0) > 0,
            detail=f"{status.get('alive', 0)} worker(s) seen, {status.get('workers', 0)} processes; "
            f"per queue {serving}",
        )
    elif pool is not None:
        status = pool.status()
        checks["workers"] = Check(
            ok=status.get("alive", 0) > 0, detail=f"{status.get('alive', 0)}/{status.get('workers', 0)} alive"
        )
    # workers=0: jobs run in `cadenza worker` processes; their jobs' leases tell when one dies.
    if app_state.draining:
        checks["intake"] = Check(ok=False, detail="draining: shutting down")
    return checks


def engine_checks(settings: Any) -> dict[str, Check]:
    """Each engine's own readiness (``EngineSpec.check_ready``); an engine whose check raises is not ready."""
    from cadenza.engines import registry

    checks: dict[str, Check] = {}
    for spec in registry.of(settings).engines():
        try:
            ready = spec.check_ready(settings)
            checks[spec.kind] = Check(ok=ready.ok, detail=ready.detail)
        except Exception as exc:  # an engine's bug must not take /ready down
            checks[spec.kind] = Check(ok=False, detail=f"{type(exc).__name__}: {exc}")
    return checks


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: database, disk, workers (and each engine, reported apart)",
    responses={503: {"model": Readiness, "description": "Not ready; see the failing checks."}},
)
async def ready(request: Request) -> JSONResponse:
    checks = await anyio.to_thread.run_sync(readiness_checks, request.app.state)
    engines = await anyio.to_thread.run_sync(engine_checks, request.app.state.settings)
    ok = all(check.ok for check in checks.values())
    body = Readiness(status="ready" if ok else "not_ready", checks=checks, engines=engines)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
