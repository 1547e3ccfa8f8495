"""The melody engine's settings section: ``engines.melody.*`` (YAML) / ``CADENZA_ENGINES__MELODY__*`` (env)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class MelodySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presets_path: Path | None = Field(
        None, description="YAML file of extra/overriding sampling profiles, merged over the built-in presets."
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
    max_seed_bytes: int = Field(512 * 1024, ge=1024, le=16 * 1024 * 1024, description="Largest seed_midi, bytes.")
    max_seed_notes: int = Field(2000, ge=8, le=100_000, description="Most notes a seed_midi may hold.")


def section(settings: object | None) -> MelodySettings:
    """The melody section of ``settings``; defaults without settings."""
    engine = getattr(settings, "engine", None)
    return MelodySettings() if engine is None else engine("melody")
