"""Sampling profiles (``presets.yaml``, extendable with ``engines.melody.presets_path``), validated on load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cadenza.engines.catalogue import CatalogueError, merged

BUILTIN_PRESETS_PATH = Path(__file__).with_name("presets.yaml")


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = Field(min_length=1)
    temperature: float = Field(1.0, ge=0.1, le=2.0)
    top_k: int = Field(0, ge=0, le=100)
    top_p: float = Field(1.0, gt=0, le=1)
    repetition_penalty: float = Field(1.0, ge=1.0, le=2.0)
    chromatic: bool = Field(False, description="Allow notes outside the key's scale (then ≥ 90 % stay in it).")


PresetError = CatalogueError
"""A presets file cannot be read or is invalid (the message names the file and the preset)."""


def presets_for(settings: Any | None) -> dict[str, Preset]:
    """Name → preset of the built-in file merged with ``engines.melody.presets_path`` (cached per file version).
    Raises PresetError."""
    from cadenza.engines.melody.config import section

    return merged(BUILTIN_PRESETS_PATH, section(settings).presets_path, "presets", Preset, "melody presets")


def reload_catalogues(settings: Any | None) -> dict[str, list[str]]:
    """``{"presets": [names]}`` read afresh (the hot-reload hook). Raises PresetError."""
    from cadenza.engines.melody.config import section

    path = section(settings).presets_path
    return {"presets": list(merged(BUILTIN_PRESETS_PATH, path, "presets", Preset, "melody presets", fresh=True))}
