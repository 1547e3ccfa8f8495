"""``/v1/melodies/presets``: the melody engine's sampling profiles (mounted by the API from ``ENGINE.router``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from cadenza.engines.base import problem_responses
from cadenza.engines.melody.presets import Preset, presets_for

router = APIRouter(prefix="/v1/melodies", tags=["melody"])


class PresetList(BaseModel):
    count: int
    presets: list[Preset]


@router.get(
    "/presets", response_model=PresetList, summary="List melody sampling profiles", responses=problem_responses()
)
def list_presets(request: Request) -> PresetList:
    """The profiles a melody request's ``profile`` names (built-in, merged with ``engines.melody.presets_path``)."""
    presets = list(presets_for(request.app.state.settings).values())
    return PresetList(count=len(presets), presets=presets)
