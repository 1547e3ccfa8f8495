"""Cadenza Studio, the web page at ``/``: static files from the package (``api/studio/``: HTML, CSS, ES modules and
the vendored wavesurfer.js and @tonejs/midi with their licences), no build step and nothing from other origins.
The page talks only to the public ``/v1`` API and builds its forms from ``/openapi.json``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STUDIO_DIR = Path(__file__).resolve().parent.parent / "studio"
CACHE_CONTROL = "no-cache"  # revalidate with the ETag StaticFiles sends: an upgrade shows at once, unchanged is a 304

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=FileResponse)
def studio_page() -> FileResponse:
    return FileResponse(STUDIO_DIR / "index.html", headers={"Cache-Control": CACHE_CONTROL})


class StudioFiles(StaticFiles):
    """StaticFiles with a ``Cache-Control`` header (and ES modules as ``text/javascript``)."""

    async def get_response(self, path: str, scope: Scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = CACHE_CONTROL
        if path.endswith(".js"):
            response.headers["Content-Type"] = "text/javascript; charset=utf-8"
        elif path.endswith(".md"):
            response.headers["Content-Type"] = "text/markdown; charset=utf-8"
        return response


def studio_files() -> StudioFiles:
    return StudioFiles(directory=STUDIO_DIR)
