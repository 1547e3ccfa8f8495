"""FastAPI dependencies and the API's job view (the service's ``JobView`` plus links)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from cadenza.api.auth import ANONYMOUS, Principal
from cadenza.api.problems import ProblemError
from cadenza.jobs import JobService, JobView, OutputView
from cadenza.jobs.views import job_links
from cadenza.settings import Settings


class OutputOut(OutputView):
    url: str = Field(description="Download URL of this file: `/v1/jobs/{id}/files/{name}`.")


class JobLinks(BaseModel):
    self: str
    events: str
    cancel: str


class JobOut(JobView):
    """A job as the API returns it: the stored view plus URLs (example: from the engines, see ``api.examples``)."""

    outputs: list[OutputOut]  # type: ignore[assignment]
    url: str
    links: JobLinks


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next (older) page; null at the end.")


def job_out(view: JobView) -> JobOut:
    return JobOut.model_validate(job_links(view))


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_service(request: Request) -> JobService:
    return request.app.state.service


def get_principal(request: Request) -> Principal:
    return request.scope.get("state", {}).get("principal", ANONYMOUS)


def get_owner(request: Request) -> str | None:
    """Owner filter for the job service: the caller's key id, or None (admin / auth off) = all jobs."""
    return get_principal(request).owner


def require_admin(request: Request) -> None:
    """Routes that change the whole server (model load/unload) need the ``admin_key`` when
    ``auth_enabled``: any other key gets 403. Without auth everyone is the operator."""
    if request.app.state.settings.auth_enabled and not get_principal(request).is_admin:
        raise ProblemError(
            403,
            "Only the admin key (the `admin_key` setting) may change what the whole server has loaded.",
            title="Admin Key Required",
        )


def get_executor(request: Request) -> Any:
    """The app's executor (``cadenza.jobs.Executor``), or None when this server runs no workers."""
    return getattr(request.app.state, "executor", None)


ServiceDep = Annotated[JobService, Depends(get_service)]
OwnerDep = Annotated[str | None, Depends(get_owner)]


_QUERY_NAMES = "_cadenza_query_names"


def declared_query_names(route: Any) -> frozenset[str] | None:
    """The query parameter names ``route`` declares (its dependencies' and its OpenAPI ``parameters``), or None
    for a route that is not an API route (static files, mounts). Routes are built once: the names are read
    once and kept on the route (some route classes are not hashable, so no cache keyed by route)."""
    from fastapi.routing import APIRoute

    if not isinstance(route, APIRoute):
        return None
    kept = getattr(route, _QUERY_NAMES, None)
    if kept is not None:
        return kept
    names: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        names |= {param.alias for param in dependant.query_params}
        pending.extend(dependant.dependencies)
    extra = (route.openapi_extra or {}).get("parameters", [])
    names |= {p["name"] for p in extra if isinstance(p, dict) and p.get("in") == "query"}
    setattr(route, _QUERY_NAMES, frozenset(names))
    return frozenset(names)


async def reject_unknown_query(request: Request) -> None:
    """Every ``/v1`` route answers a query parameter it does not declare with a 422 naming what it accepts, so a
    misspelt filter (``?stauts=failed``) is not silently ignored."""
    if not request.url.path.startswith("/v1/"):
        return
    allowed = declared_query_names(request.scope.get("route"))
    if allowed is None:
        return
    unknown = sorted({name for name in request.query_params if name not in allowed})
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise ProblemError(
            422,
            f"Unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"this route accepts: {accepted}.",
            title="Validation Failed",
            errors=[
                {"loc": ["query", name], "msg": "Unknown query parameter", "type": "extra_forbidden"}
                for name in unknown
            ],
        )
