"""The separation engine's settings section: ``engines.separation.*`` / ``CADENZA_ENGINES__SEPARATION__*``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SeparationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_upload_bytes: int = Field(200 * 1024 * 1024, gt=0, description="Largest song file accepted, in bytes.")
    max_duration_s: float = Field(900.0, gt=0, description="Longest song accepted, in seconds.")


def section(settings: object | None) -> SeparationSettings:
    """The separation section of ``settings``; defaults without settings."""
    engine = getattr(settings, "engine", None)
    return SeparationSettings() if engine is None else engine("separation")
