"""``/v1/uploads``: send a file once, reference it by id in any number of submits.

``POST /v1/uploads`` takes ``multipart/form-data`` with one ``file`` part, streamed to disk under
``max_upload_bytes`` and hashed (SHA-256); the upload belongs to the caller's key and expires after
``retention_uploads_h``. An engine's own checks (format, duration, size limit of the input) run when a
submit references it, so one song can be separated with several models without re-uploading.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import ConfigDict

from cadenza.api.auth import Principal
from cadenza.api.deps import OwnerDep, ServiceDep, get_principal
from cadenza.api.problems import ProblemError, responses
from cadenza.api.routes.submit import UPLOAD_TYPES, _check_intake, _UploadState, content_type_route, receive_multipart
from cadenza.jobs import JobService, UploadNotFound, UploadView
from cadenza.jobs.service import UPLOAD_ID_RE

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

UploadId = Annotated[
    str, Path(pattern=UPLOAD_ID_RE.pattern, description="The `id` of a POST /v1/uploads answer (`upl_` + 32 hex).")
]

_EXAMPLE = {
    "id": "upl_5f1c0e7a9b2d4c6e8f0a1b3c5d7e9f01",
    "filename": "song.flac",
    "media_type": "audio/flac",
    "size_bytes": 3145728,
    "sha256": "9b74c9897bac770ffc029102a200c5de8f1c4c1d2b2a6f0e4c1d8e7f6a5b4c3d",
    "created_at": "2026-12-02T10:00:00Z",
    "expires_at": "2026-12-03T10:00:00Z",
}


class UploadOut(UploadView):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})


async def create_upload(
    request: Request, service: ServiceDep, principal: Principal = Depends(get_principal)
) -> Response:
    _check_intake(request)
    settings = request.app.state.settings
    state = _UploadState({"file": settings.max_upload_bytes}, service.staging_path)
    try:
        await receive_multipart(request, state)
        staged = state.files.get("file")
        if staged is None:
            raise ProblemError(
                422,
                "The form has no `file` part.",
                title="Validation Failed",
                errors=[{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}],
            )
        if staged.size == 0:
            raise ProblemError(
                422,
                "The uploaded file is empty.",
                title="Validation Failed",
                errors=[{"loc": ["body", "file"], "msg": "The file is empty", "type": "empty_file"}],
            )
        view = await anyio.to_thread.run_sync(
            lambda: service.create_upload(
                staged.path,
                filename=staged.filename,
                media_type=staged.media_type,
                size_bytes=staged.size,
                sha256=staged.digest.hexdigest(),
                owner=principal.owner,
            )
        )
    finally:
        state.remove()
    body = UploadOut.model_validate(view.model_dump()).model_dump_json()
    return Response(
        body, status_code=201, headers={"Location": f"/v1/uploads/{view.id}"}, media_type="application/json"
    )


router.add_api_route(
    "",
    create_upload,
    methods=["POST"],
    status_code=201,
    response_model=UploadOut,
    summary="Upload a file once; reference its id in submits",
    responses=responses(400, 401, 413, 415, 422, 429, 503),
    route_class_override=content_type_route(UPLOAD_TYPES),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                }
            },
        }
    },
)


def _get(service: JobService, upload_id: str, owner: str | None) -> UploadView:
    try:
        return service.get_upload(upload_id, owner)[0]
    except UploadNotFound as exc:
        raise ProblemError(404, str(exc), title="Upload Not Found") from None


@router.get("/{upload_id}", response_model=UploadOut, summary="Get an upload", responses=responses(401, 404, 422, 429))
def get_upload(upload_id: UploadId, service: ServiceDep, owner: OwnerDep) -> Any:
    return _get(service, upload_id, owner)


@router.delete("/{upload_id}", status_code=204, summary="Delete an upload", responses=responses(401, 404, 422, 429))
def delete_upload(upload_id: UploadId, service: ServiceDep, owner: OwnerDep) -> Response:
    _get(service, upload_id, owner)
    with contextlib.suppress(UploadNotFound):  # deleted meanwhile: the same end state
        service.delete_upload(upload_id, owner)
    return Response(status_code=204)
