"""Registry of engines: one line per engine. Imported lazily so ``cadenza --help`` stays fast."""

from __future__ import annotations

import importlib
from functools import cache

from cadenza.engines.base import EngineSpec

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
