"""YAML catalogues users extend without code (melody presets, track genres): a built-in file merged with a
user's file of the same shape, entries validated by a Pydantic model and merged by name, cached per file
version (modification time), re-read on demand for a hot reload."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Entry = TypeVar("Entry", bound=BaseModel)


class CatalogueError(ValueError):
    """A catalogue file cannot be read or is invalid (the message names the file and the entry)."""


def read_entries(path: Path, key: str, model: type[Entry], what: str) -> list[Entry]:
    """The entries under ``key`` of YAML file ``path``, each validated as ``model``. ``what`` names the
    catalogue in messages ("melody presets"). Raises CatalogueError (a subclass of ValueError)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{what} file {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise CatalogueError(f"{what} file {path}: expected a mapping with a list under '{key}'")
    entries = []
    for index, entry in enumerate(document[key]):
        try:
            entries.append(model.model_validate(entry))
        except ValidationError as exc:
            label = entry.get("name") if isinstance(entry, dict) else f"#{index + 1}"
            raise CatalogueError(f"{what} file {path}: entry {label!r}: {exc}") from exc
    return entries


@lru_cache(maxsize=32)
def _merged(builtin: Path, user: Path | None, mtime_ns: int, key: str, model: type[Any], what: str) -> dict[str, Any]:
    entries = {e.name: e for e in read_entries(builtin, key, model, what)}
    if user is not None:
        entries |= {e.name: e for e in read_entries(Path(user), key, model, what)}
    return entries


def merged(
    builtin: Path, user: Path | None, key: str, model: type[Entry], what: str, fresh: bool = False
) -> dict[str, Entry]:
    """Name → entry of ``builtin`` merged with ``user`` (its entries replace same-named ones), cached per
    version of the user's file; ``fresh`` re-reads both (hot reload). Raises CatalogueError."""
    if fresh:
        return _merged.__wrapped__(builtin, user, 0, key, model, what)
    try:
        mtime = Path(user).stat().st_mtime_ns if user is not None else 0
    except OSError:
        mtime = -1
    return _merged(builtin, user, mtime, key, model, what)
