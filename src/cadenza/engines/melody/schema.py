"""Request model of the melody engine (``POST /v1/melodies``, ``cadenza melody …``)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from cadenza.engines.base import RequestModel
from cadenza.engines.melody.corpus import SUPPORTED_METERS
from cadenza.music.keys import KEY_PATTERN, parse_key
from cadenza.music.midi import meter_from_text

OutputFormat = Literal["midi", "notes", "abc", "musicxml", "wav", "mp3", "tokens"]
METERS = [list(m) for m in SUPPORTED_METERS if m != (3, 8)]
MAX_BARS = 64


class MelodyRequest(RequestModel):
    """Generate folk-style melodies, or continue a seed melody (``seed_midi``: a MIDI file, multipart or an
    upload id), with a model trained on public-domain tunes (O'Neill's 1850, Ryan's Mammoth Collection 1883).

    Every note stays in the key's scale (unless the profile allows chromatic notes), bars are exactly full,
    and the tune ends on the tonic or the fifth on a strong beat.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"key": "D major", "time_signature": [6, 8], "bars": 8, "seed": 1},
                {"key": "E minor", "time_signature": [4, 4], "bars": 16, "profile": "creative", "num_samples": 4},
            ]
        },
    )

    key: str | None = Field(
        None,
        description="Tonic and mode: 'D major', 'E minor', 'A dorian', 'G mixolydian', 'F#m'. Omitted: the seed's "
        "(Krumhansl–Kessler estimate), else D major.",
        examples=["D major"],
        json_schema_extra={"pattern": KEY_PATTERN},
    )
    time_signature: tuple[int, int] | None = Field(
        None,
        description=f"One of {METERS}. Omitted: the seed's, else 4/4.",
        examples=[[6, 8]],
        json_schema_extra={"enum": [*METERS, None]},
    )
    tempo: float = Field(110.0, ge=30, le=300, description="Tempo in BPM (quarter notes per minute).")
    bars: int = Field(8, ge=1, le=MAX_BARS, description="Bars of the result (a seed's bars included).")
    instrument: int = Field(
        73, ge=0, le=127, description="General MIDI program (0-based) of the MIDI and audio; 73 = flute."
    )
    profile: str = Field(
        "balanced",
        description="Sampling profile from GET /v1/melodies/presets.",
        json_schema_extra={"x-catalogue": "/v1/melodies/presets"},
    )
    temperature: float | None = Field(None, ge=0.1, le=2.0, description="Overrides the profile.")
    top_k: int | None = Field(None, ge=0, le=100, description="Overrides the profile (0 = off).")
    top_p: float | None = Field(None, gt=0, le=1, description="Overrides the profile.")
    repetition_penalty: float | None = Field(None, ge=1.0, le=2.0, description="Overrides the profile.")
    num_samples: int = Field(1, ge=1, le=16, description="Melodies in one job, each its own files.")
    include_seed: bool = Field(True, description="Keep the seed's notes at the start of the result.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Random seed; same request + seed → same files.")
    formats: list[OutputFormat] = Field(
        default_factory=lambda: ["midi", "abc"],
        max_length=7,
        description="MIDI always; 'notes' (JSON), 'abc' (ABC notation), 'musicxml' (MusicXML 4.0 for notation "
        "programs; needs the 'notation' extra, music21), 'wav'/'mp3' (General MIDI SoundFont preview), 'tokens' "
        "(the model's tokens with their log-probabilities).",
    )

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return None if value is None else parse_key(value).name

    _meter_text = field_validator("time_signature", mode="before")(meter_from_text)

    @field_validator("time_signature")
    @classmethod
    def _meter(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and list(value) not in METERS:
            raise ValueError(f"time_signature must be one of {METERS}, got {list(value)}")
        return value

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(["midi", *value]))
