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
    musicgen_name: str = Field(
        "musicgen-small", pattern=r"^[A-Za-z0-9._-]{1,64}$", description="MusicGen folder of model 'musicgen'."
    )
    musicgen_window_s: float = Field(30.0, ge=2, le=30, description="Seconds generated per MusicGen window.")
    musicgen_overlap_s: float = Field(
        10.0, ge=0, le=15, description="Seconds of previous audio each later MusicGen window is conditioned on."
    )


def section(settings: object | None) -> TrackSettings:
    """The track section of ``settings``; defaults without settings."""
    engine = getattr(settings, "engine", None)
    return TrackSettings() if engine is None else engine("track")
