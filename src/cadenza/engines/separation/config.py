"""The separation engine's settings section: ``engines.separation.*`` / ``CADENZA_ENGINES__SEPARATION__*``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SeparationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_upload_bytes: int = Field(200 * 1024 * 1024, gt=0, description="Largest song file accepted, in bytes.")
    max_duration_s: float = Field(900.0, gt=0, description="Longest song accepted, in seconds.")
    max_channels: int = Field(8, gt=0, le=256, description="Most audio channels accepted (7.1 is 8).")
    max_sample_rate_hz: int = Field(192_000, ge=8000, le=768_000, description="Highest sample rate accepted, in Hz.")
    max_decoded_mb: float = Field(
        1536.0,
        gt=0,
        description="Largest decoded size accepted, in MiB of float32 samples (channels x sample rate x "
        "duration x 4 bytes), checked from the header before decoding. The default takes 15 min of 8 "
        "channels at 48 kHz or of stereo at 192 kHz.",
    )


def section(settings: object | None) -> SeparationSettings:
    """The separation section of ``settings``; defaults without settings."""
    engine = getattr(settings, "engine", None)
    return SeparationSettings() if engine is None else engine("separation")
