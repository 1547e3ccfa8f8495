"""The track engine's settings section: ``engines.track.*`` (YAML) / ``CADENZA_ENGINES__TRACK__*`` (env)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class TrackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    genres_path: Path | None = Field(
        None, description="YAML file of extra/overriding genres, merged over the built-in catalogue by name."
    )
    soundfont_path: Path | None = Field(
        None,
        description="A .sf2/.sf3 General MIDI SoundFont to render with; default TimGM6mb (shipped with pretty_midi). "
        "A larger one sounds better, e.g. Debian's FluidR3_GM (/usr/share/sounds/sf2/FluidR3_GM.sf2).",
    )
    max_duration_s: float = Field(300.0, ge=5, le=600, description="Longest track a request may ask for, seconds.")


def section(settings: object | None) -> TrackSettings:
    """The track section of ``settings``; defaults without settings."""
    engine = getattr(settings, "engine", None)
    return TrackSettings() if engine is None else engine("track")
