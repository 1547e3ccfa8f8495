"""Track engine: a text prompt to a mastered multitrack song, composed with Cadenza's drums and melody engines
and genre rules, rendered through a General MIDI SoundFont, mixed and mastered (−14 LUFS, ≤ −1 dBTP).

Light on import (no NumPy, no torch): the runtime is in ``engine.py``; evaluation in ``lab/``.
"""

from __future__ import annotations

from cadenza.engines.base import CommandSpec, EngineSpec
from cadenza.engines.track.config import TrackSettings
from cadenza.engines.track.schema import TrackRequest

_ENGINE = "cadenza.engines.track.engine"

ENGINE = EngineSpec(
    kind="track",
    route="tracks",
    summary="Make a mastered song from a text prompt (mix, stems, multitrack MIDI, track.json).",
    request_model=TrackRequest,
    run=f"{_ENGINE}:run",
    list_models=f"{_ENGINE}:list_models",
    validate_request=f"{_ENGINE}:validate_request",
    retry_on_crash=True,
    example={"prompt": "lo-fi hip hop, 84 bpm, A minor, dusty Rhodes, 60 seconds", "seed": 1},
    settings_model=TrackSettings,
    router="cadenza.engines.track.routes:router",
    commands=(
        CommandSpec(
            "",
            "track",
            "cadenza.engines.track.cli:run_command",
            "Make a mastered song from a text prompt: mix, stems, arrangement.mid and track.json, no server.",
        ),
        CommandSpec(
            "eval",
            "track",
            "cadenza.engines.track.lab.evaluate:eval_command",
            "Evaluate prompt adherence (tempo, key, duration, loudness) over the prompt set; docs/eval/track.*.",
        ),
    ),
    catalogues="cadenza.engines.track.genres:reload_catalogues",
)

__all__ = ["ENGINE", "TrackRequest", "TrackSettings"]
