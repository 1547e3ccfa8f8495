"""Separation engine: upload a song, get stems (built-in ``hpss`` or local Demucs models).

Import-light: NumPy, torch, librosa and demucs are imported only when a job runs (``engine.py``);
the synthetic SDR benchmark is in ``lab/``.
"""

from __future__ import annotations

from cadenza.engines.base import CommandSpec, EngineSpec, InputSpec
from cadenza.engines.separation.config import SeparationSettings
from cadenza.engines.separation.schema import SeparationRequest

_ENGINE = "cadenza.engines.separation.engine"

ENGINE = EngineSpec(
    kind="separation",
    route="separations",
    summary="Split an uploaded song into stems (drums, bass, vocals, …) with hpss or Demucs.",
    request_model=SeparationRequest,
    run=f"{_ENGINE}:run",
    list_models=f"{_ENGINE}:list_models",
    load_model=f"{_ENGINE}:load_model",
    unload_model=f"{_ENGINE}:unload_model",
    validate_request=f"{_ENGINE}:validate_request",
    retry_on_crash=False,
    example={"model": "hpss", "output_format": "flac", "pcm_type": "PCM_24"},
    inputs=(
        InputSpec(
            name="file",
            kind="audio",
            description="The song: WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF, M4A/AAC (format detected from content).",
            required=True,
            extensions=(".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".m4a", ".aac"),
            max_bytes=f"{_ENGINE}:max_upload_bytes",
            probe=f"{_ENGINE}:probe_upload",
            example=f"{_ENGINE}:example_song",
        ),
    ),
    settings_model=SeparationSettings,
    commands=(
        CommandSpec(
            "",
            "separate",
            "cadenza.engines.separation.cli:run_command",
            "Separate SONG into stems without a server (same engine and checks as the API).",
        ),
        CommandSpec(
            "",
            "demo-song",
            "cadenza.engines.separation.cli:demo_song_command",
            "Write a short synthesized demo song (drums, bass, chords) to try separation with.",
        ),
        CommandSpec(
            "eval",
            "separation",
            "cadenza.engines.separation.cli:eval_command",
            "Score hpss against the mixture floor and the oracle IRM2 ceiling on a synthetic benchmark.",
        ),
    ),
)

__all__ = ["ENGINE", "SeparationRequest", "SeparationSettings"]
