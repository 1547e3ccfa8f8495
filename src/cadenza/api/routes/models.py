"""``/v1/models``: the models engines provide, whether their weights are present and loaded in workers."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from cadenza.api.deps import get_executor, get_settings, require_admin
from cadenza.api.problems import ProblemError, responses
from cadenza.engines import registry
from cadenza.engines.base import ModelInfo
from cadenza.settings import Settings

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelOut(BaseModel):
    """A model an engine provides (example: from the engines, see ``api.examples``)."""

    name: str
    engine: str
    version: str
    description: str
    licence: str
    data_source: str
    size_bytes: int | None
    weights_present: bool
    missing_files: list[str]
    path: str | None
    loaded: bool | None = Field(description="Loaded in this server's workers; null without a local worker pool.")


class ModelList(BaseModel):
    count: int
    models: list[ModelOut]


def _out(info: ModelInfo, loaded: set[str] | None) -> ModelOut:
    data: dict[str, Any] = dataclasses.asdict(info)
    return ModelOut(**data, loaded=None if loaded is None else info.name in loaded)


def _find(settings: Settings, name: str) -> ModelInfo:
    models = registry.of(settings).models(settings.models_dir)
    for info in models:
        if info.name == name:
            return info
    valid = ", ".join(sorted(m.name for m in models)) or "(none)"
    raise ProblemError(404, f"No model {name!r}; known models: {valid}.", title="Model Not Found")


@router.get("", response_model=ModelList, summary="List models", responses=responses(401, 429))
def list_models(settings: Settings = Depends(get_settings), pool: Any = Depends(get_executor)) -> ModelList:
    loaded = pool.loaded_models() if pool is not None else None
    models = [_out(info, loaded) for info in registry.of(settings).models(settings.models_dir)]
    return ModelList(count=len(models), models=models)


@router.get("/{name}", response_model=ModelOut, summary="Get one model", responses=responses(401, 404, 429))
def get_model(name: str, settings: Settings = Depends(get_settings), pool: Any = Depends(get_executor)) -> ModelOut:
    info = _find(settings, name)
    return _out(info, pool.loaded_models() if pool is not None else None)


@router.post(
    "/{name}/{action}",
    response_model=ModelOut,
    summary="Load or unload a model in the local workers (admin key when auth is on)",
    responses=responses(401, 403, 404, 409, 422, 429),
    dependencies=[Depends(require_admin)],
)
async def change_model(
    request: Request,
    name: str,
    action: Literal["load", "unload"],
    settings: Settings = Depends(get_settings),
    pool: Any = Depends(get_executor),
) -> ModelOut:
    info = await anyio.to_thread.run_sync(_find, settings, name)
    if pool is None:
        raise ProblemError(
            409,
            "This server runs no workers (workers=0); load models in the `cadenza worker` processes.",
            title="No Local Workers",
        )
    if action == "load" and not info.weights_present:
        raise ProblemError(
            422,
            f"Weights of {name!r} are missing: {', '.join(info.missing_files) or 'unknown files'}.",
            title="Weights Missing",
        )
    await anyio.to_thread.run_sync(pool.request_model, name, action)
    return _out(info, await anyio.to_thread.run_sync(pool.loaded_models))
