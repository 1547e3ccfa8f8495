"""The API docs without internet and without inline scripts: Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

Their bundles are the ones ``fastapi-offline`` ships, served from the installed package at ``/docs/assets``
together with ``api/docs/swagger-init.js``, which starts Swagger UI from the settings in the page's JSON block:
FastAPI's own page starts it with an inline ``<script>``, which the page's Content-Security-Policy refuses.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, swagger_ui_default_parameters
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from cadenza.api.auth import DOCS_ASSETS_PATH

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"

#: Swagger UI: its scripts and styles from this server only (it sets styles through the CSSOM, never inline
#: markup), its icons as ``data:`` SVG, "Try it out" answers shown from ``blob:`` URLs.
SWAGGER_UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: ReDoc: scripts from this server only, but its styled-components write ``<style>`` elements (no nonce
#: support in the standalone bundle), hence ``'unsafe-inline'`` for styles alone; its search runs in a
#: ``blob:`` worker.
REDOC_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

SWAGGER_UI_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" href="{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script type="application/json" id="swagger-ui-config">{config}</script>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI for the app's OpenAPI document, with the app's ``swagger_ui_parameters``."""
    app = request.app
    root = request.scope.get("root_path", "")
    config = {"url": f"{root}{app.openapi_url}", **swagger_ui_default_parameters, **(app.swagger_ui_parameters or {})}
    # a JSON data block is never run as script; "<" escaped so no "</script>" can end it early
    data = json.dumps(config).replace("<", "\\u003c")
    title = html.escape(f"{app.title} - Swagger UI")
    return HTMLResponse(SWAGGER_UI_PAGE.format(title=title, assets=root + DOCS_ASSETS_PATH, config=data))


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    """ReDoc for the app's OpenAPI document (FastAPI's page: no inline script, one inline style)."""
    app = request.app
    root = request.scope.get("root_path", "")
    return get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{DOCS_ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


def docs_files() -> StaticFiles:
    """``/docs/assets``: ``swagger-init.js`` (``api/docs/``) and fastapi-offline's Swagger UI and ReDoc bundles."""
    return StaticFiles(directory=DOCS_DIR, packages=[("fastapi_offline", "static")])
