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
