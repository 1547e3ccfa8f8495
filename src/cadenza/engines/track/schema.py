"""Request model of the track engine (``POST /v1/tracks``, ``cadenza track "PROMPT" …``)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from cadenza.engines.base import RequestModel
from cadenza.music.keys import KEY_PATTERN, parse_key
from cadenza.music.midi import meter_from_text

OutputFormat = Literal["wav", "flac", "mp3"]
Part = Literal["drums", "bass", "harmony", "lead", "pad"]


SUPPORTED_METERS = ((2, 4), (3, 4), (4, 4), (6, 8), (12, 8))


class TrackRequest(RequestModel):
    """A finished song from a text prompt: composed by Cadenza's own engines (drums, melody) and rules of the
    genre, rendered through a General MIDI SoundFont, mixed and mastered to −14 LUFS integrated with true
    peak ≤ −1 dBTP. Exact tempo, key, meter and duration; the same request and seed give the same files.

    Outputs: the mastered mix (``track.wav``/``.flac``/``.mp3``), one stem per part that sums to the mix
    (``stems/<part>.wav``), ``arrangement.mid`` (one named track per part, tempo, key, meter, section markers)
    and ``track.json`` (what the prompt was understood as, sections, chords, measured loudness and tempo).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"prompt": "lo-fi hip hop, 84 bpm, A minor, dusty Rhodes, 60 seconds", "seed": 1},
                {"prompt": "jazz waltz in Bb with vibraphone", "duration_s": 45, "loop": False, "seed": 7},
            ]
        },
    )

    prompt: str = Field(min_length=1, max_length=1000, description="What to make, in English.")
    duration_s: float | None = Field(
        None, ge=5, le=300, description="Length in seconds (5-300). Omitted: from the prompt, else 30."
    )
    tempo: float | None = Field(None, ge=40, le=240, description="BPM (quarter notes per minute); overrides the text.")
    key: str | None = Field(
        None,
        description="'A minor', 'F# dorian', 'Eb'; overrides the text.",
        json_schema_extra={"pattern": KEY_PATTERN},
    )
    time_signature: tuple[int, int] | None = Field(
        None,
        description="[3, 4], [4, 4], [6, 8], [12, 8], [2, 4]; overrides the text.",
        json_schema_extra={"enum": [*(list(m) for m in SUPPORTED_METERS), None]},
    )
    genre: str | None = Field(
        None,
        description="A genre of GET /v1/tracks/genres; overrides the text.",
        json_schema_extra={"x-catalogue": "/v1/tracks/genres"},
    )
    instruments: list[str] | None = Field(
        None, max_length=8, description="Instrument words ('rhodes', '808', 'strings'); override the text's."
    )
    loop: bool = Field(
        False, description="A seamless loop: no intro or outro, tails wrapped to the start; whole bars long."
    )
    lyrics: str | None = Field(
        None,
        max_length=4000,
        description="Words sung one syllable per lead note (MIDI lyric events, a General MIDI voice patch; "
        "no singing synthesis).",
    )
    stems: bool = Field(True, description="Write one stem per part (they sum to the mix).")
    formats: list[OutputFormat] = Field(
        default_factory=lambda: ["wav", "mp3"], min_length=1, max_length=3, description="Formats of the mix."
    )
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Random seed; same request + seed → same files.")
    model: str = Field(
        "cadenza-arranger",
        pattern=r"^(cadenza-arranger|musicgen(:[A-Za-z0-9._-]{1,64})?)$",
        description="'cadenza-arranger' (default): symbolic composition with Cadenza's engines. 'musicgen' or "
        "'musicgen:<name>': a MusicGen checkpoint from <models_dir>/musicgen/<name>/ (default name: the "
        "engines.track.musicgen_name setting), rendered audio only (no stems, no MIDI), then mastered.",
    )

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return None if value is None else parse_key(value).name

    _meter_text = field_validator("time_signature", mode="before")(meter_from_text)

    @field_validator("time_signature")
    @classmethod
    def _meter(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and value not in SUPPORTED_METERS:
            raise ValueError(f"time_signature must be one of {[list(m) for m in SUPPORTED_METERS]}")
        return value

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))
