"""Sampling profiles (``presets.yaml``, extendable with ``engines.melody.presets_path``), validated on load."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


class PresetError(ValueError):
    """A presets file cannot be read or is invalid (the message names the file and the preset)."""


def _read(path: Path) -> list[Preset]:
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PresetError(f"melody presets file {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("presets"), list):
        raise PresetError(f"melody presets file {path}: expected a mapping with a list under 'presets'")
    presets = []
    for index, entry in enumerate(document["presets"]):
        try:
            presets.append(Preset.model_validate(entry))
        except ValidationError as exc:
            label = entry.get("name") if isinstance(entry, dict) else f"#{index + 1}"
            raise PresetError(f"melody presets file {path}: preset {label!r}: {exc}") from exc
    return presets


@lru_cache(maxsize=8)
def _load(user_path: Path | None, mtime_ns: int) -> dict[str, Preset]:
    presets = {p.name: p for p in _read(BUILTIN_PRESETS_PATH)}
    if user_path is not None:
        presets |= {p.name: p for p in _read(Path(user_path))}
    return presets


def presets_for(settings: Any | None) -> dict[str, Preset]:
    """Name → preset of the built-in file merged with ``engines.melody.presets_path`` (cached per file version).
    Raises PresetError."""
    from cadenza.engines.melody.config import section

    path = section(settings).presets_path
    try:
        mtime = Path(path).stat().st_mtime_ns if path is not None else 0
    except OSError:
        mtime = -1
    return _load(path, mtime)


def reload_catalogues(settings: Any | None) -> dict[str, list[str]]:
    """``{"presets": [names]}`` read afresh (the hot-reload hook). Raises PresetError."""
    from cadenza.engines.melody.config import section

    path = section(settings).presets_path
    return {"presets": list(_load.__wrapped__(path, 0))}
