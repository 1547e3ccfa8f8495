"""Drums engine: drum grooves in a producer's style from a groove transformer trained on the Groove MIDI Dataset.

Light on import (no torch, no NumPy): the runtime lives in ``engine.py`` (imported when a job runs), the
model is loaded inside ``run`` and kept in the worker's cache; training and evaluation are in ``lab/``.
"""

from __future__ import annotations

from cadenza.engines.base import CommandSpec, EngineSpec, InputSpec
from cadenza.engines.drums import examples
from cadenza.engines.drums.config import DrumsSettings
from cadenza.engines.drums.schema import DrumsRequest

_ENGINE = "cadenza.engines.drums.engine"

ENGINE = EngineSpec(
    kind="drums",
    route="drums",
    summary="Generate a drum groove (MIDI, JSON pattern, optional audio preview) in a producer's style.",
    request_model=DrumsRequest,
    run=f"{_ENGINE}:run",
    list_models=f"{_ENGINE}:list_models",
    load_model=f"{_ENGINE}:load_model",
    unload_model=f"{_ENGINE}:unload_model",
    validate_request=f"{_ENGINE}:validate_request",
    validate_inputs=f"{_ENGINE}:validate_inputs",
    inputs=(
        InputSpec(
            name="reference_midi",
            kind="midi",
            description="A drum groove you played or programmed (Standard MIDI File, General MIDI percussion on "
            "channel 10): new grooves follow its feel, density and instruments (see reference_mode).",
            required=False,
            extensions=(".mid", ".midi"),
            max_bytes=f"{_ENGINE}:max_reference_bytes",
            probe=f"{_ENGINE}:probe_reference",
            example=f"{_ENGINE}:example_reference",
        ),
    ),
    retry_on_crash=True,
    example={"producer_style": "J Dilla", "bars": 4, "tempo": 90},
    settings_model=DrumsSettings,
    router="cadenza.engines.drums.routes:router",
    commands=(
        CommandSpec(
            "",
            "drums",
            "cadenza.engines.drums.cli:run_command",
            "Generate a drum groove in a producer's style: writes groove.mid, pattern.json and optional audio.",
        ),
        CommandSpec(
            "train",
            "drums",
            "cadenza.engines.drums.lab.train:train_command",
            "Train the groove transformer on the Groove MIDI Dataset (CPU).",
        ),
        CommandSpec(
            "eval",
            "drums",
            "cadenza.engines.drums.lab.evaluate:eval_command",
            "Evaluate the drums model on the GMD test split and write docs/eval/drums.{md,json}.",
        ),
    ),
    openapi_examples={"job": examples.JOB, "model": examples.MODEL},
    catalogues="cadenza.engines.drums.styles:reload_catalogues",
)

__all__ = ["ENGINE", "DrumsRequest", "DrumsSettings"]
