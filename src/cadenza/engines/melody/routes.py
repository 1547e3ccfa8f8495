"""``/v1/melodies/presets``: the melody engine's sampling profiles (mounted by the API from ``ENGINE.router``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from cadenza.engines.base import problem_responses
from cadenza.engines.melody.presets import Preset, presets_for

router = APIRouter(prefix="/v1/melodies", tags=["melody"])


PRESETS_EXAMPLE = {
    "count": 1,
    "presets": [
        {
            "name": "balanced",
            "description": "The default; varied but idiomatic.",
            "temperature": 1.0,
            "top_k": 0,
            "top_p": 0.95,
            "repetition_penalty": 1.1,
            "chromatic": False,
        }
    ],
}


class PresetList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [PRESETS_EXAMPLE]})

    count: int
    presets: list[Preset]


@router.get(
    "/presets", response_model=PresetList, summary="List melody sampling profiles", responses=problem_responses()
)
def list_presets(request: Request) -> PresetList:
    """The profiles a melody request's ``profile`` names (built-in, merged with ``engines.melody.presets_path``)."""
    presets = list(presets_for(request.app.state.settings).values())
    return PresetList(count=len(presets), presets=presets)
