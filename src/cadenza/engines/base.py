"""The small interface every engine implements.

An engine is a folder under ``cadenza/engines/`` that exposes ``ENGINE: EngineSpec`` in its
``__init__.py``; ``cadenza.engines.registry`` lists them, one line per engine. The job layer
only talks to engines through this module, so a new engine never touches ``jobs`` or ``api``.

Life of one run inside a worker process::

    params = spec.request_model.model_validate(job.params)   # validated again in the worker
    result = spec.run(params, progress, ctx)                  # writes files into ctx.workdir
    # the job layer hashes result.outputs and records them with result.metadata

``progress(percent, stage)`` must be called regularly (at least once a second of work); it
raises :class:`JobCancelled` once the job was cancelled, so engines stop at the next call.
Engines must not catch ``JobCancelled``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel


class JobCancelled(Exception):  # noqa: N818 - the field's word, not an error condition of the engine
    """Raised by the progress callback when the job was cancelled; engines let it propagate."""


class EngineInputError(ValueError):
    """The request is valid in form but cannot be served (e.g. a model's weights are missing).

    The job fails with this error's message; the API maps it to a 4xx where it can check it early.
    """


class UploadRejected(ValueError):
    """An uploaded file cannot be used. ``status`` is the HTTP status the API answers with
    (413 too large, 415 unsupported format, 422 corrupt / too long / silent)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class Progress(Protocol):
    def __call__(self, percent: float, stage: str = "") -> None:
        """Report ``percent`` in [0, 100] and a short stage message. Raises JobCancelled."""


@dataclass(frozen=True)
class Output:
    """One file an engine wrote into ``RunContext.workdir``.

    ``name`` is the download name (``groove.mid``, ``drums.wav``): letters, digits, ``._-`` only.
    """

    name: str
    media_type: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineResult:
    outputs: list[Output]
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class RunContext:
    """What the worker gives an engine for one job.

    ``workdir``: an empty folder for this job's outputs (removed by the job layer on failure or cancel).
    ``models_dir``: the user-supplied folder of large public weights (``<models_dir>/demucs/…``).
    ``cache``: a per-process dict the engine may use to keep loaded models between jobs.
    ``device``: ``"cpu"`` or ``"cuda[:N]"`` as configured (engines may honour a per-request override).
    ``settings``: the effective ``cadenza.settings.Settings`` (read-only by convention).
    ``input_path``: the uploaded file of an upload engine (``accepts_upload``), else None.
    """

    workdir: Path
    models_dir: Path
    cache: dict[str, Any]
    device: str = "cpu"
    settings: Any = None
    input_path: Path | None = None


@dataclass(frozen=True)
class ModelInfo:
    """One entry of ``GET /v1/models``."""

    name: str
    engine: str
    version: str
    description: str
    licence: str
    data_source: str
    size_bytes: int | None
    weights_present: bool
    missing_files: list[str] = field(default_factory=list)
    path: str | None = None


@dataclass(frozen=True)
class EngineSpec:
    """Declaration of one engine.

    ``kind``: job kind stored in the database (``"drums"``).
    ``route``: path segment of the submit route under ``/v1`` (``"drums"``, ``"separations"``).
    ``request_model``: the Pydantic v2 request schema (JSON body, or form fields for uploads).
    ``run``: ``run(params, progress, ctx) -> EngineResult``; runs in a worker process.
    ``list_models``: ``list_models(models_dir) -> list[ModelInfo]``; cheap, no weights loaded.
    ``load_model`` / ``unload_model``: optional, keep or drop a model in ``ctx.cache``.
    ``retry_on_crash``: whether a job whose worker process died is retried once.
    ``accepts_upload``: the submit route takes ``multipart/form-data`` with a ``file`` part.
    ``validate_request(params, settings) -> warnings``: cheap checks in the API process before a job
    is created (e.g. the requested model's weights exist); raises EngineInputError -> 422.
    ``probe_upload(path, settings) -> info``: checks an uploaded file (format from content, duration,
    silence) before a job is created; raises UploadRejected. ``info`` is stored with the job.
    """

    kind: str
    route: str
    summary: str
    request_model: type[BaseModel]
    run: Callable[[BaseModel, Progress, RunContext], EngineResult]
    list_models: Callable[[Path], list[ModelInfo]]
    load_model: Callable[[str, RunContext], None] | None = None
    unload_model: Callable[[str, RunContext], None] | None = None
    retry_on_crash: bool = True
    accepts_upload: bool = False
    example: dict[str, Any] | None = None
    validate_request: Callable[[BaseModel, Any], list[str]] | None = None
    probe_upload: Callable[[Path, Any], dict[str, Any]] | None = None
