"""The drums engine's settings section: ``engines.drums.*`` (YAML) / ``CADENZA_ENGINES__DRUMS__*`` (env)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class DrumsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    styles_path: Path | None = Field(
        None, description="YAML file of extra/overriding producer styles, merged over the built-in catalog."
    )
    soundfont_path: Path | None = Field(
        None, description="A .sf2/.sf3 General MIDI SoundFont for audio previews; default TimGM6mb."
    )
    max_loaded_models: int = Field(
        2, ge=1, le=64, description="Models of this engine a worker keeps loaded; the least recently used goes first."
    )
    model_idle_s: float | None = Field(
        1800.0, gt=0, description="Seconds unused after which a worker unloads a model; null: never."
    )
    max_reference_bytes: int = Field(
        1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest reference_midi file accepted, in bytes."
    )


def section(settings: object | None) -> DrumsSettings:
    """The drums section of ``settings`` (a ``cadenza.settings.Settings``); defaults without settings."""
    engine = getattr(settings, "engine", None)
    if engine is None:
        return DrumsSettings()
    return engine("drums")
