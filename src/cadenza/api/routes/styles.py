"""``/v1/styles``: the drums engine's producer-style catalog."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from cadenza.api import examples
from cadenza.api.deps import get_settings
from cadenza.api.problems import ProblemError, responses
from cadenza.engines.drums.styles import Style, StyleCatalog, cached_catalog
from cadenza.settings import Settings

router = APIRouter(prefix="/v1/styles", tags=["styles"])


class StyleOut(Style):
    """A producer style of the catalog (the drums engine's ``Style``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.STYLE]})


class StyleList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.STYLE_LIST]})

    count: int
    styles: list[StyleOut]


def _catalog(settings: Settings) -> StyleCatalog:
    """The catalog of ``drum_styles_path``, parsed once and again only when that file changes (~25 ms a load)."""
    return cached_catalog(settings.drum_styles_path)


@router.get("", response_model=StyleList, summary="List producer styles", responses=responses(401, 429))
def list_styles(settings: Settings = Depends(get_settings)) -> dict[str, Any]:
    styles = [style.model_dump(mode="json") for style in _catalog(settings).styles]
    return {"count": len(styles), "styles": styles}


@router.get(
    "/{name}",
    response_model=StyleOut,
    summary="Get one producer style (case-insensitive)",
    responses=responses(401, 404, 429),
)
def get_style(name: str, settings: Settings = Depends(get_settings)) -> dict[str, Any]:
    catalog = _catalog(settings)
    try:
        return catalog.get(name).model_dump(mode="json")
    except KeyError:
        valid = ", ".join(style.name for style in catalog.styles)
        raise ProblemError(404, f"No style {name!r}; valid styles: {valid}.", title="Style Not Found") from None
