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

#: CSP hash of the ``<style>`` that wavesurfer.js (``vendor/wavesurfer.esm.js``) writes into each waveform's shadow
#: root, as studio.js creates it (``height: 64``): SHA-256 of its text, base64. A wavesurfer upgrade or another
#: height changes it (tests/api/test_security_headers.py recomputes it; the browser names the new one).
WAVESURFER_STYLE_HASH = "sha256-fF0LBso7Nz75zaFRDBUefBDvPe19hjaiDnnc8lt+2Js="
#: The page's Content-Security-Policy: nothing from other origins, no inline script, no inline style but
#: wavesurfer's (by its hash); audio is fetched and played from ``blob:`` URLs.
CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; script-src 'self'; style-src 'self' '{WAVESURFER_STYLE_HASH}'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

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
