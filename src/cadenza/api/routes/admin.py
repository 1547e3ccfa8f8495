"""``/v1/admin``: operations on the whole server (the admin key when auth is on)."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Depends, Request

from cadenza.api.deps import require_admin
from cadenza.api.problems import ProblemError, responses
from cadenza.api.reload import ReloadFailed, ReloadReport, reload_app

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post(
    "/reload",
    response_model=ReloadReport,
    summary="Re-read the configuration's reloadable parts and the engines' catalogues (same as SIGHUP)",
    responses=responses(401, 403, 422, 429),
)
async def reload(request: Request) -> ReloadReport:
    """Applies rate limit, retention, CORS and the overload guard from the configuration as it is now,
    re-reads style and preset catalogues, and names every other changed setting in `needs_restart`."""
    try:
        return await anyio.to_thread.run_sync(reload_app, request.app)
    except ReloadFailed as exc:
        raise ProblemError(422, f"Nothing was reloaded: {exc}", title="Invalid Configuration") from exc
