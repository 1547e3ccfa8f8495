"""The genre catalogue (``genres.yaml``, extendable with ``engines.track.genres_path``), validated on load."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cadenza.engines.catalogue import CatalogueError, merged
from cadenza.music.harmony import parse_numeral

BUILTIN_GENRES_PATH = Path(__file__).with_name("genres.yaml")
PARTS = ("drums", "bass", "harmony", "lead", "pad")
BassPattern = Literal[
    "root_eighths", "root_syncopated", "glide_808", "offbeat_octaves", "walking", "reggae", "tumbao", "sustained"
]
CompPattern = Literal["sustained_chords", "stabs", "arpeggio", "strum", "skank", "charleston", "montuno"]


class PartMix(BaseModel):
    """Mix settings of one part: gain in dB, pan (−1 left … 1 right), reverb send (0–1) and EQ corners in Hz."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gain_db: float = Field(0.0, ge=-40, le=12)
    pan: float = Field(0.0, ge=-1, le=1)
    reverb: float = Field(0.0, ge=0, le=1)
    highpass_hz: float | None = Field(None, gt=10, lt=20000)
    lowpass_hz: float | None = Field(None, gt=100, lt=22000)


class Genre(BaseModel):
    """One genre of the catalogue (see the comments at the top of ``genres.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=40)
    words: list[str] = Field(default_factory=list, description="Words and phrases of a prompt that name it.")
    tempo_bpm: tuple[float, float, float]
    meter: tuple[int, int] = (4, 4)
    mode: Literal["major", "minor", "dorian", "mixolydian"] = "major"
    drum_style: str | None = None
    swing_percent: float = Field(50.0, ge=50, le=75)
    palette: dict[str, int]
    progressions: dict[Literal["major", "minor"], list[list[str]]]
    bass: BassPattern
    comp: CompPattern
    sections: list[tuple[str, float, float]] = Field(min_length=1)
    mix: dict[str, PartMix]
    reverb_s: float = Field(1.5, ge=0.2, le=8.0)

    @field_validator("tempo_bpm")
    @classmethod
    def _tempo(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        low, high, default = value
        if not 30 <= low <= default <= high <= 300:
            raise ValueError(f"tempo_bpm must be [low, high, default] with 30 ≤ low ≤ default ≤ high ≤ 300: {value}")
        return value

    @field_validator("palette")
    @classmethod
    def _palette(cls, value: dict[str, int]) -> dict[str, int]:
        for part, program in value.items():
            if part not in PARTS or part == "drums":
                raise ValueError(f"palette part {part!r} is not one of bass, harmony, lead, pad")
            if not 0 <= program <= 127:
                raise ValueError(f"palette {part}: General MIDI program must be 0-127, got {program}")
        if not {"bass", "harmony", "lead"} <= set(value):
            raise ValueError("palette needs at least bass, harmony and lead")
        return value

    @field_validator("progressions")
    @classmethod
    def _progressions(cls, value: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
        if set(value) != {"major", "minor"}:
            raise ValueError("progressions need a 'major' and a 'minor' list")
        for family, progressions in value.items():
            if not progressions or not all(progressions):
                raise ValueError(f"progressions.{family} needs at least one non-empty progression")
            for progression in progressions:
                for numeral in progression:
                    parse_numeral(numeral)
        return value

    @field_validator("sections")
    @classmethod
    def _sections(cls, value: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
        for name, share, energy in value:
            if name not in ("intro", "verse", "chorus", "bridge", "outro"):
                raise ValueError(f"section {name!r} must be intro, verse, chorus, bridge or outro")
            if not 0 < share <= 1 or not 0 <= energy <= 1:
                raise ValueError(f"section {name}: share must be in (0, 1] and energy in [0, 1]")
        return value


GenreError = CatalogueError
"""A genres file cannot be read or is invalid (the message names the file and the genre)."""


def genres_for(settings: Any | None) -> dict[str, Genre]:
    """Name → genre of the built-in file merged with ``engines.track.genres_path`` (cached per file version).
    Raises GenreError."""
    from cadenza.engines.track.config import section

    return merged(BUILTIN_GENRES_PATH, section(settings).genres_path, "genres", Genre, "track genres")


def reload_catalogues(settings: Any | None) -> dict[str, list[str]]:
    """``{"genres": [names]}`` read afresh (the hot-reload hook). Raises GenreError."""
    from cadenza.engines.track.config import section

    path = section(settings).genres_path
    return {"genres": list(merged(BUILTIN_GENRES_PATH, path, "genres", Genre, "track genres", fresh=True))}
