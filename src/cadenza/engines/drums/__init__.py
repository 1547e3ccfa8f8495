"""Drums engine: drum grooves in a producer's style from a groove transformer trained on the Groove MIDI Dataset.

Light on import (no torch): the model is loaded inside ``run`` and kept in the worker's cache.
"""

from __future__ import annotations

from cadenza.engines.base import EngineSpec
from cadenza.engines.drums.engine import list_models, load_model, run, unload_model, validate_request
from cadenza.engines.drums.schema import DrumsRequest

ENGINE = EngineSpec(
    kind="drums",
    route="drums",
    summary="Generate a drum groove (MIDI, JSON pattern, optional audio preview) in a producer's style.",
    request_model=DrumsRequest,
    run=run,
    list_models=list_models,
    load_model=load_model,
    unload_model=unload_model,
    retry_on_crash=True,
    example={"producer_style": "J Dilla", "bars": 4, "tempo": 90},
    validate_request=validate_request,
)
