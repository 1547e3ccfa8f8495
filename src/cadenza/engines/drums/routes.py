"""``/v1/styles``: the drums engine's producer-style catalog (mounted by the API from ``ENGINE.router``).

Reads the effective settings from ``request.app.state.settings`` (the catalog of
``engines.drums.styles_path``, merged over the built-in one); errors are :class:`EngineProblem`, which
the API answers as RFC 9457 problems.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from cadenza.engines.base import EngineProblem, problem_responses
from cadenza.engines.drums import examples
from cadenza.engines.drums.styles import Style, StyleCatalog, catalog_for_settings

router = APIRouter(prefix="/v1/styles", tags=["drums"])


class StyleOut(Style):
    """A producer style of the catalog (the drums engine's ``Style``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.STYLE]})


class StyleList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.STYLE_LIST]})

    count: int
    styles: list[StyleOut]


def _catalog(request: Request) -> StyleCatalog:
    """The catalog of the app's settings, parsed once and again only when that file changes (~25 ms a load)."""
    return catalog_for_settings(request.app.state.settings)


@router.get("", response_model=StyleList, summary="List producer styles")
def list_styles(request: Request) -> dict[str, Any]:
    styles = [style.model_dump(mode="json") for style in _catalog(request).styles]
    return {"count": len(styles), "styles": styles}


@router.get(
    "/{name}",
    response_model=StyleOut,
    summary="Get one producer style (case-insensitive)",
    responses=problem_responses(404),
)
def get_style(name: str, request: Request) -> dict[str, Any]:
    catalog = _catalog(request)
    try:
        return catalog.get(name).model_dump(mode="json")
    except KeyError:
        valid = ", ".join(style.name for style in catalog.styles)
        raise EngineProblem(404, "Style Not Found", f"No style {name!r}; valid styles: {valid}.") from None
