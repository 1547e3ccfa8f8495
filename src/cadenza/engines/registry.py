"""Registry of engines: one line per built-in engine, plus the ``plugins`` setting.

``BUILTIN`` maps each job kind to the package that exposes ``ENGINE: EngineSpec``. ``plugins`` (a
setting: import paths of packages outside this repository, e.g. ``["acme_cadenza.reverb"]``) adds
engines without editing this file; a plugin's kind is its ``ENGINE.kind``. Engine packages are
imported on first use and must stay light to import (no torch, no NumPy): their heavy callables are
import strings resolved when a job runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from cadenza.engines.base import KIND_RE, EngineSpec, ModelInfo

BUILTIN: dict[str, str] = {
    "drums": "cadenza.engines.drums",
    "separation": "cadenza.engines.separation",
    "melody": "cadenza.engines.melody",
    "track": "cadenza.engines.track",
}


class RegistryError(ValueError):
    """An engine package is missing, exposes no ``ENGINE``, or declares a kind that does not fit."""


@cache
def load_spec(module: str) -> EngineSpec:
    """``ENGINE`` of package ``module``. Raises RegistryError."""
    try:
        spec = importlib.import_module(module).ENGINE
    except ImportError as exc:
        raise RegistryError(f"engine package {module!r} cannot be imported: {exc}") from exc
    except AttributeError:
        raise RegistryError(f"engine package {module!r} has no ENGINE (an EngineSpec)") from None
    if not isinstance(spec, EngineSpec):
        raise RegistryError(f"{module}.ENGINE is not an EngineSpec")
    if not KIND_RE.fullmatch(spec.kind):
        raise RegistryError(f"{module}: kind {spec.kind!r} must match {KIND_RE.pattern}")
    return spec


class Registry:
    """The engines of one configuration: the built-in ones, then the plugins, by kind."""

    def __init__(self, plugins: Iterable[str] = ()) -> None:
        self.modules: dict[str, str] = dict(BUILTIN)
        for module in plugins:
            kind = load_spec(module).kind
            if kind in self.modules and self.modules[kind] != module:
                raise RegistryError(f"plugin {module!r} declares kind {kind!r}, already taken by {self.modules[kind]}")
            self.modules[kind] = module

    def get(self, kind: str) -> EngineSpec:
        """The engine of job kind ``kind``. Raises KeyError for an unknown kind, RegistryError when the
        package's ``ENGINE.kind`` differs from its registry key."""
        spec = load_spec(self.modules[kind])
        if spec.kind != kind:
            raise RegistryError(f"{self.modules[kind]}: ENGINE.kind is {spec.kind!r} but it is registered as {kind!r}")
        return spec

    def __contains__(self, kind: object) -> bool:
        return kind in self.modules

    @property
    def kinds(self) -> list[str]:
        return list(self.modules)

    def engines(self) -> list[EngineSpec]:
        return [self.get(kind) for kind in self.modules]

    def models(self, models_dir: Path) -> list[ModelInfo]:
        """Every engine's models, each engine's default first (cheap: no weights are loaded)."""
        return [info for spec in self.engines() for info in spec.models(Path(models_dir))]

    def model_kind(self, name: str, models_dir: Path) -> str:
        """The kind of the engine that lists model ``name``. Raises KeyError for an unknown model."""
        for info in self.models(models_dir):
            if info.name == name:
                return info.engine
        raise KeyError(f"unknown model {name!r}")


@cache
def _registry(plugins: tuple[str, ...]) -> Registry:
    return Registry(plugins)


def for_plugins(plugins: Sequence[str] = ()) -> Registry:
    """The (cached) registry of the built-in engines plus ``plugins``."""
    return _registry(tuple(plugins))


def of(settings: Any) -> Registry:
    """The registry of ``settings`` (its ``plugins``)."""
    return for_plugins(tuple(getattr(settings, "plugins", ()) or ()))
