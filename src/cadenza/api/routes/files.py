"""``GET /v1/jobs/{id}/files/{name}``: download a job's output (ETag = SHA-256, conditional and Range requests).

Range handling is Starlette's ``FileResponse`` (RFC 9110 §14: single ranges -> 206 with Content-Range,
multiple ranges -> multipart/byteranges); unsatisfiable ranges are answered here as a 416 problem with
``Content-Range: bytes */size``.
"""

from __future__ import annotations

import zipfile
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from cadenza.api.deps import OwnerDep, ServiceDep
from cadenza.api.problems import ProblemError, responses
from cadenza.jobs.views import download_name

router = APIRouter(prefix="/v1/jobs", tags=["files"])


def _etag_matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in candidates


@router.get(
    "/{job_id}/files/{name}",
    summary="Download an output file",
    response_class=FileResponse,
    responses={
        200: {"description": "The file (`Accept-Ranges: bytes`; `ETag` is its SHA-256).", "content": {"*/*": {}}},
        206: {"description": "Partial content for a `Range` request."},
        304: {"description": "Not modified (`If-None-Match` matched the ETag)."},
        **responses(401, 404, 409, 410, 416, 422, 429),
    },
)
def download_file(
    request: Request,
    job_id: UUID,
    name: str,
    service: ServiceDep,
    owner: OwnerDep,
) -> Response:
    output, path = service.output_file(job_id, owner, name)
    etag = f'"{output.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-transform"}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    size = path.stat().st_size
    http_range = request.headers.get("range")
    if http_range:
        try:
            FileResponse._parse_range_header(http_range, size)
        except RangeNotSatisfiable as exc:
            raise ProblemError(
                416,
                f"Range {http_range!r} is outside the file ({size} bytes).",
                title="Range Not Satisfiable",
                headers={"Content-Range": f"bytes */{size}"},
            ) from exc
        except MalformedRangeHeader:
            # RFC 9110 §14.2: an invalid Range header is ignored (full 200 answer).
            request.scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"range"]
    return FileResponse(path, media_type=output.media_type, filename=output.download_name, headers=headers)


router.add_api_route(
    "/{job_id}/files/{name}",
    download_file,
    methods=["HEAD"],
    operation_id="head_file",
    summary="The headers of an output file's download (size, type, ETag), without the body",
    response_class=FileResponse,
    responses={200: {"description": "The headers GET would send."}, **responses(401, 404, 409, 410, 422, 429)},
)


@router.get(
    "/{job_id}/archive.zip",
    summary="Download every output of a completed job as one ZIP (MIDI, stems, mix: ready for a DAW)",
    response_class=FileResponse,
    responses={
        200: {"description": "A ZIP of the outputs, each under its download name.", "content": {"application/zip": {}}},
        **responses(401, 404, 409, 410, 422, 429),
    },
)
def download_archive(job_id: UUID, service: ServiceDep, owner: OwnerDep) -> Response:
    """The files are stored, not recompressed (audio and MIDI gain little), so building the archive costs about
    one read of the files; it is written to a temporary file that is removed once sent."""
    kind, files = service.output_files(job_id, owner)
    path = service.scratch_path(".zip")
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
            for output, source in files:
                archive.write(source, arcname=output.download_name)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path,
        media_type="application/zip",
        filename=download_name(kind, job_id, ".zip"),
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
