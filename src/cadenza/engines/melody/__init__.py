"""Melody engine: folk-style melodies and continuations of a MIDI seed, from a transformer trained on
public-domain tunes (O'Neill's 1850, Ryan's Mammoth Collection 1883).

Light on import (no torch): the runtime lives in ``engine.py`` and ``generate.py``; training and evaluation
are in ``lab/``.
"""

from __future__ import annotations

from cadenza.engines.base import CommandSpec, EngineSpec, InputSpec, QuickSpec
from cadenza.engines.melody.config import MelodySettings
from cadenza.engines.melody.schema import MelodyRequest

_ENGINE = "cadenza.engines.melody.engine"

ENGINE = EngineSpec(
    kind="melody",
    route="melodies",
    summary="Generate folk-style melodies or continue a MIDI seed (MIDI, ABC, notes JSON, audio preview).",
    request_model=MelodyRequest,
    run=f"{_ENGINE}:run",
    list_models=f"{_ENGINE}:list_models",
    load_model=f"{_ENGINE}:load_model",
    unload_model=f"{_ENGINE}:unload_model",
    validate_request=f"{_ENGINE}:validate_request",
    validate_inputs=f"{_ENGINE}:validate_inputs",
    retry_on_crash=True,
    example={"key": "D major", "time_signature": [6, 8], "bars": 8, "seed": 1},
    inputs=(
        InputSpec(
            name="seed_midi",
            kind="midi",
            description="A melody to continue (Standard MIDI File; a polyphonic seed is reduced to its top line).",
            required=False,
            extensions=(".mid", ".midi"),
            max_bytes=f"{_ENGINE}:max_seed_bytes",
            probe=f"{_ENGINE}:probe_seed",
            example=f"{_ENGINE}:example_seed",
        ),
    ),
    settings_model=MelodySettings,
    router="cadenza.engines.melody.routes:router",
    commands=(
        CommandSpec(
            "",
            "melody",
            "cadenza.engines.melody.cli:run_command",
            "Generate a folk-style melody (or continue a MIDI seed): writes MIDI, ABC and optional audio.",
        ),
        CommandSpec(
            "train",
            "melody",
            "cadenza.engines.melody.lab.train:train_command",
            "Train the melody transformer on public-domain folk tunes (music21's corpus; CPU).",
        ),
        CommandSpec(
            "eval",
            "melody",
            "cadenza.engines.melody.lab.evaluate:eval_command",
            "Evaluate the melody model on held-out tunes and write docs/eval/melody.{md,json}.",
        ),
    ),
    catalogues="cadenza.engines.melody.presets:reload_catalogues",
    quick=QuickSpec(
        path="quick.mid",
        suffix=".mid",
        media_type="audio/midi",
        description="A melody as a MIDI file in one GET: `/v1/melodies/quick.mid?key=D+major&time_signature=6/8"
        "&bars=8&seed=1`. One melody of at most 32 bars; no seed_midi upload (use POST for those).",
        check=f"{_ENGINE}:quick_check",
    ),
)

__all__ = ["ENGINE", "MelodyRequest", "MelodySettings"]
