"""Request model of the drums engine (``POST /v1/drums``, ``cadenza drums …``)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from cadenza.engines.base import RequestModel
from cadenza.engines.drums.styles import StyleCatalog, catalog_for_settings

PatternType = Literal["intro", "verse", "chorus", "bridge", "outro"]
OutputFormat = Literal["midi", "json", "wav", "flac", "mp3"]


class DrumsRequest(RequestModel):
    """Generate a drum groove in a producer's style, optionally in the feel of your own drum MIDI.

    Send a ``reference_midi`` (a drum MIDI file you played or programmed: General MIDI percussion on channel 10)
    as a multipart file part or as the id of a ``POST /v1/uploads`` file: its tempo and time signature become
    the defaults, and the result reports how close the groove's feel is to it (``metadata.reference``).

    Validation context (optional): ``{"catalog": StyleCatalog}`` checks ``producer_style`` against that
    catalog, ``{"settings": Settings}`` against the catalog of those settings' ``engines.drums.styles_path``;
    without either, against the built-in catalog (:func:`styles.catalog_for_settings`).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"producer_style": "J Dilla", "bars": 4, "tempo": 90},
                {
                    "producer_style": "Metro Boomin",
                    "bars": 8,
                    "tempo": 140,
                    "pattern_type": "chorus",
                    "seed": 7,
                    "formats": ["midi", "mp3"],
                },
            ]
        },
    )

    producer_style: str = Field(
        description="Style name from GET /v1/styles (case, spaces, '_' and '-' ignored: 'j dilla' = 'J Dilla').",
        examples=["J Dilla", "Metro Boomin", "Questlove"],
        json_schema_extra={"x-catalogue": "/v1/styles"},  # clients (Cadenza Studio) offer the catalogue's names
    )
    bars: int = Field(4, ge=1, le=32, description="Number of bars to generate.", examples=[4])
    tempo: float | None = Field(
        None,
        ge=60,
        le=200,
        description="Tempo in BPM (quarter notes per minute). Omitted: the middle of the style's preferred range "
        "(whole BPM; GET /v1/styles lists the ranges). Outside the range is allowed and reported as a warning.",
        examples=[90],
    )
    time_signature: tuple[int, int] = Field(
        (4, 4),
        description="[numerator 1–16, denominator 2/4/8/16], e.g. [4, 4], [3, 4], [6, 8].",
        examples=[[4, 4], [6, 8]],
        json_schema_extra={
            "prefixItems": [
                {"type": "integer", "minimum": 1, "maximum": 16},
                {"type": "integer", "enum": [2, 4, 8, 16]},
            ]
        },
    )
    humanize: bool = Field(
        True,
        description="Apply the style's swing, micro-timing, ghost notes and velocity variation; false = quantised "
        "grid (offsets 0) with the model's velocities shaped only by the meter's accents and the pattern type.",
    )
    pattern_type: PatternType = Field(
        "verse",
        description="Song section: sets density, crash on downbeats and fills at phrase ends.",
        examples=["verse"],
    )
    temperature: float = Field(0.9, ge=0.1, le=2.0, description="Sampling temperature of the model.")
    top_k: int = Field(0, ge=0, le=100, description="Sample from the k most likely hit patterns per step (0 = off).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling: smallest set with this probability mass.")
    reference_mode: Literal["feel", "vary"] = Field(
        "feel",
        description="With a reference_midi file: 'feel' = new grooves with the reference's feel (micro-timing, "
        "velocities, swing), density and instruments; 'vary' = variations of the reference pattern itself (fills, "
        "and the section's density: sparser intro, denser chorus). Ignored without a reference.",
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**63 - 1,
        description="Random seed; same request + seed → same files. Omitted: a random seed, reported in the result.",
        examples=[42],
    )
    formats: list[OutputFormat] = Field(
        default_factory=lambda: ["midi"],
        max_length=5,
        description="Outputs: MIDI (groove.mid) and JSON (pattern.json) are always written; add 'wav', 'flac' or "
        "'mp3' for an audio preview rendered with a General MIDI SoundFont.",
        examples=[["midi", "wav"]],
    )

    @field_validator("producer_style")
    @classmethod
    def _known_style(cls, value: str, info: ValidationInfo) -> str:
        context = info.context if isinstance(info.context, dict) else {}
        catalog = context.get("catalog")
        if not isinstance(catalog, StyleCatalog):
            catalog = catalog_for_settings(context.get("settings"))
        try:
            return catalog.get(value).name
        except KeyError:
            raise ValueError(f"unknown producer_style {value!r}; valid styles: {', '.join(catalog.names)}") from None

    @field_validator("time_signature")
    @classmethod
    def _time_signature(cls, value: tuple[int, int]) -> tuple[int, int]:
        numerator, denominator = value
        if not 1 <= numerator <= 16:
            raise ValueError(f"numerator must be 1–16, got {numerator}")
        if denominator not in (2, 4, 8, 16):
            raise ValueError(f"denominator must be 2, 4, 8 or 16, got {denominator}")
        return value

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @property
    def preview_formats(self) -> list[str]:
        """Requested audio preview formats (wav, flac, mp3) in request order."""
        return [f for f in self.formats if f in ("wav", "flac", "mp3")]
