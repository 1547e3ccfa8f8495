"""Separation engine: upload a song, get stems (built-in ``hpss`` or local Demucs models).

Import-light: torch, librosa and demucs are imported only when a job runs.
"""

from __future__ import annotations

from cadenza.engines.base import EngineSpec
from cadenza.engines.separation.engine import list_models, load_model, probe_upload, run, unload_model, validate_request
from cadenza.engines.separation.schema import SeparationRequest

ENGINE = EngineSpec(
    kind="separation",
    route="separations",
    summary="Split an uploaded song into stems (drums, bass, vocals, …) with hpss or Demucs.",
    request_model=SeparationRequest,
    run=run,
    list_models=list_models,
    load_model=load_model,
    unload_model=unload_model,
    retry_on_crash=False,
    accepts_upload=True,
    example={"model": "hpss", "output_format": "flac", "pcm_type": "PCM_24"},
    validate_request=validate_request,
    probe_upload=probe_upload,
)

__all__ = ["ENGINE", "SeparationRequest"]
