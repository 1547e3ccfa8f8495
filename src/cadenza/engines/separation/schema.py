"""Request schema of ``POST /v1/separations`` (multipart form fields besides ``file``)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from cadenza.engines.base import RequestModel
from cadenza.music.formats import MP3_SAMPLE_RATES


class SeparationRequest(RequestModel):
    """Parameters of one separation job. Which stems exist depends on the model (``GET /v1/models``)."""

    # The cross-field rules of ``_exclusive``, stated in the schema too (JSON Schema ``not`` and ``if``/``then``),
    # so a client or a fuzzer generating from the document sends what the server accepts.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "not": {
                "required": ["stems", "two_stems"],
                "properties": {
                    "stems": {"type": "array", "contains": {"pattern": "[^\\s,]"}},
                    "two_stems": {"type": "string"},
                },
            },
            "if": {
                "required": ["output_format", "sample_rate"],
                "properties": {"output_format": {"const": "mp3"}, "sample_rate": {"type": "integer"}},
            },
            "then": {"properties": {"sample_rate": {"enum": list(MP3_SAMPLE_RATES)}}},
        },
    )

    model: str | None = Field(
        None,
        description="Model name: 'hpss' (built in) or a Demucs model present in <models_dir>/demucs. "
        "Default: the best Demucs model present, else 'hpss'.",
        examples=["hpss", "htdemucs"],
    )
    stems: list[str] | None = Field(
        None, description="Subset of the model's sources to write; default all.", examples=[["drums", "vocals"]]
    )
    two_stems: str | None = Field(
        None, description="Write only this source and its complement 'no_<source>' (sum of the others)."
    )
    output_format: Literal["wav", "flac", "mp3"] = "wav"
    pcm_type: Literal["PCM_16", "PCM_24", "FLOAT"] = Field("PCM_16", description="Sample format of wav/flac.")
    mp3_bitrate: int = Field(320, ge=96, le=320, description="Constant MP3 bitrate in kbps.")
    sample_rate: int | None = Field(
        None, ge=8000, le=192000, description="Output sample rate in Hz; default the input's."
    )
    segment_s: float | None = Field(
        None,
        gt=0,
        le=600,
        description="Demucs: segment length in seconds passed to apply_model (<= the model's own). "
        "hpss: processing block length (default 30 s).",
    )
    overlap: float = Field(0.25, ge=0, le=0.99, description="Demucs: overlap between segments (fraction).")
    shifts: int = Field(
        1, ge=0, le=20, description="Demucs: random time shifts averaged (equivariance trick); 0 = none."
    )
    device: str | None = Field(
        None,
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="'auto', 'cpu' or 'cuda[:N]'; default the server's setting. hpss always runs on the CPU.",
    )
    clip: Literal["rescale", "clamp"] = Field(
        "rescale", description="rescale: scale all stems by one factor if any peak exceeds 0 dBFS; clamp: clip."
    )
    margin: float = Field(
        1.0,
        ge=1.0,
        le=10.0,
        description="hpss: separation margin (Driedger et al. 2014); > 1 adds a 'residual' stem.",
    )
    seed: int = Field(0, ge=0, description="Seed of Demucs' random shifts: same request + seed, same output.")

    @field_validator("stems", mode="before")
    @classmethod
    def _split_stems(cls, value: object) -> object:
        # Form fields arrive as "drums,vocals" or repeated fields.
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            out = [s.strip() for item in value for s in str(item).split(",") if s.strip()]
            return out or None
        return value

    @model_validator(mode="after")
    def _exclusive(self) -> SeparationRequest:
        if self.stems is not None and self.two_stems is not None:
            raise ValueError("give either 'stems' or 'two_stems', not both")
        if self.output_format == "mp3" and self.sample_rate is not None and self.sample_rate not in MP3_SAMPLE_RATES:
            raise ValueError(f"MP3 allows the sample rates {MP3_SAMPLE_RATES} Hz")
        if self.output_format == "flac" and self.pcm_type == "FLOAT":
            raise ValueError("FLAC stores integer PCM only: use pcm_type PCM_16 or PCM_24")
        return self
