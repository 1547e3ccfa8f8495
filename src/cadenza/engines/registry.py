"""Registry of engines: one line per engine. Imported lazily so ``cadenza --help`` stays fast."""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

from cadenza.engines.base import EngineSpec, ModelInfo

ENGINE_MODULES: dict[str, str] = {
    "drums": "cadenza.engines.drums",
    "separation": "cadenza.engines.separation",
}


@cache
def get_engine(kind: str) -> EngineSpec:
    """Return the engine of job kind ``kind``. Raises KeyError for an unknown kind."""
    return importlib.import_module(ENGINE_MODULES[kind]).ENGINE


def all_engines() -> list[EngineSpec]:
    return [get_engine(kind) for kind in ENGINE_MODULES]


def all_models(models_dir: Path) -> list[ModelInfo]:
    """Every engine's models, each engine's default first (cheap: no weights are loaded)."""
    return [info for spec in all_engines() for info in spec.list_models(Path(models_dir))]
