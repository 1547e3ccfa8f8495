"""The small interface every engine implements.

An engine is a folder under ``cadenza/engines/`` (or any importable package, see the ``plugins``
setting) that exposes ``ENGINE: EngineSpec`` in its ``__init__.py``; ``cadenza.engines.registry``
lists the built-in ones, one line per engine. The job layer, the API and the CLI only talk to engines
through this module, so a new engine never touches ``jobs``, ``api`` or ``cli``.

Life of one run inside a worker process::

    params, warnings = spec.validate(job.params, settings)   # the one validation path, everywhere
    result = spec.resolve("run")(params, progress, ctx)      # writes files into ctx.workdir
    # the job layer hashes result.outputs and records them with result.metadata

``progress(percent, stage)`` (percent in [0, 100]) must be called regularly (at least once a second
of work); it raises :class:`JobCancelled` once the job was cancelled, so engines stop at the next
call. Engines must not catch ``JobCancelled``.

Callables of a spec may be given as ``"module:attribute"`` import strings: they are imported on first
use, so reading the registry (``cadenza --help``, the API's routes) never imports torch or NumPy.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Protocol, Union, get_args, get_origin

from pydantic import BaseModel, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
"""Job kinds: lower-case letters, digits and ``_``, at most 32 characters (the ``jobs.kind`` column)."""

RESERVED_INPUT_NAMES = frozenset({"params"})
"""Multipart part names the platform uses itself (``params``: the request as one JSON part)."""


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number"}
_ERROR_TYPES = {"boolean": "bool_type", "integer": "int_type", "number": "float_type"}


def _confused_type(annotation: Any, raw: Any) -> str | None:
    """The JSON type (``"integer"``, ``"number"``, ``"boolean"``) that ``annotation`` expects where ``raw`` holds a
    boolean for a number or a number for a boolean (looking through unions, ``Annotated``, lists, tuples and dict
    values); None when it holds neither."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _confused_type(args[0], raw)
    if origin in (Union, UnionType):
        if type(raw) in args or (type(raw) is int and float in args):  # one branch takes it as it is
            return None
        return next((kind for arg in args if (kind := _confused_type(arg, raw))), None)
    if isinstance(raw, bool):
        return {int: "integer", float: "number"}.get(annotation)
    if isinstance(raw, int | float):
        return "boolean" if annotation is bool else None
    pairs: Any = ()
    if isinstance(raw, list | tuple) and args:
        if origin is tuple and args[-1] is not Ellipsis:
            pairs = zip(args, raw, strict=False)  # positional; a wrong length is the type's own error
        elif origin in (list, tuple, set, frozenset, Sequence):
            pairs = ((args[0], item) for item in raw)
    elif isinstance(raw, dict) and origin is dict and len(args) == 2:
        pairs = ((args[1], item) for item in raw.values())
    return next((kind for arg, item in pairs if (kind := _confused_type(arg, item))), None)


class RequestModel(BaseModel):
    """Base of the request models (engines' ``request_model``, the job options, the batch bodies): a boolean is
    not a number, nor a number a boolean. Pydantic's lax mode, which form fields need (``"4"`` is read as 4,
    ``"true"`` as True), also reads ``true`` as 1 for an ``int``/``float`` field and 0 or 1 as a ``bool``; here
    such a field (also inside ``int | None``, ``tuple[int, int]``, …) refuses them with an ``int_type``,
    ``float_type`` or ``bool_type`` error (422), as its schema (``integer``, ``number``, ``boolean``) says."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        expected = _confused_type(field.annotation, value) if field is not None else None
        if expected is not None:
            given = "a number" if expected == "boolean" else "a boolean (true/false)"
            raise PydanticCustomError(_ERROR_TYPES[expected], f"Input should be a valid {expected}, not {given}")
        return value


class JobCancelled(Exception):  # noqa: N818 - the field's word, not an error condition of the engine
    """Raised by the progress callback when the job was cancelled; engines let it propagate."""


class EngineInputError(ValueError):
    """The request is valid in form but cannot be served (e.g. a model's weights are missing).

    The job fails with this error's message; the API answers 422 where it can check it early.
    """


class EngineProblem(Exception):
    """An engine's answer to a client that is not a job: ``status`` (4xx), ``title`` and ``detail``.

    Raised by an engine's extra routes (e.g. 404 for an unknown style) and, as :class:`UploadRejected`,
    by input probes; the API turns it into an RFC 9457 problem.
    """

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class UploadRejected(EngineProblem, ValueError):
    """An uploaded file cannot be used. ``status`` is the HTTP status the API answers with
    (413 too large, 415 unsupported format, 422 corrupt / too long / silent)."""


class Progress(Protocol):
    def __call__(self, percent: float, stage: str = "") -> None:
        """Report ``percent`` in [0, 100] and a short stage message. Raises JobCancelled."""


@dataclass(frozen=True)
class Output:
    """One file an engine wrote into ``RunContext.workdir``.

    ``name`` is the file's stable name in its job's URL (``groove.mid``, ``drums.wav``): letters, digits,
    ``._-`` only. ``download_stem`` optionally describes the content for the file a user saves
    (``j-dilla_90bpm_4bars_s42``): the API's ``Content-Disposition`` is ``<stem>_<short job id><ext>``
    (``<kind>_<name stem>_<short job id><ext>`` without one), and the CLI names its files ``<stem><ext>``.
    """

    name: str
    media_type: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    download_stem: str | None = None


def find_weights(kind: str, model_id: str, models_dir: Path | None, committed_dir: Path) -> Path:
    """An engine's checkpoint file: ``<models_dir>/<kind>/<model_id>.pt`` if present (user-trained), else the
    committed ``<committed_dir>/<model_id with '_'>.pt``. Raises EngineInputError if neither exists."""
    candidates = [Path(models_dir) / kind / f"{model_id}.pt"] if models_dir is not None else []
    candidates.append(Path(committed_dir) / f"{model_id.replace('-', '_')}.pt")
    for path in candidates:
        if path.is_file():
            return path
    raise EngineInputError(f"{kind} model {model_id!r} has no weights: looked for {', '.join(map(str, candidates))}")


_LAST_USED = "__models_last_used__"
"""``ctx.cache`` entry of :func:`cached_model`: ``{(kind, model_id): monotonic time of last use}``, oldest first."""


def _model_limits(settings: Any, kind: str) -> tuple[int | None, float | None]:
    """``(max_loaded_models, model_idle_s)`` of engine ``kind``'s settings section (None: unbounded/never)."""
    section = None
    if settings is not None and hasattr(settings, "engine"):
        with contextlib.suppress(KeyError):
            section = settings.engine(kind)
    return getattr(section, "max_loaded_models", None), getattr(section, "model_idle_s", None)


def cached_model(kind: str, model_id: str, ctx: RunContext, load: Callable[[], Any]) -> Any:
    """``ctx.cache``'s model ``<kind>-model:<model_id>``, made with ``load()`` on first use. A
    FileNotFoundError or ValueError from ``load`` becomes EngineInputError (the job fails with its reason).

    Bounded per engine: before a new model is loaded, the least recently used models of ``kind`` beyond its
    settings section's ``max_loaded_models`` are dropped (LRU); :func:`evict_idle_models` drops the ones unused
    for ``model_idle_s``.
    """
    key = f"{kind}-model:{model_id}"
    last_used: OrderedDict[tuple[str, str], float] = ctx.cache.setdefault(_LAST_USED, OrderedDict())
    if key not in ctx.cache:
        limit, _ = _model_limits(ctx.settings, kind)
        if limit is not None:
            same_kind = [entry for entry in last_used if entry[0] == kind]
            for entry in same_kind[: max(0, len(same_kind) - limit + 1)]:
                drop_model(*entry, ctx.cache)
        try:
            ctx.cache[key] = load()
        except (FileNotFoundError, ValueError) as exc:
            raise EngineInputError(f"cannot load {kind} model {model_id!r}: {exc}") from exc
    last_used = ctx.cache.setdefault(_LAST_USED, OrderedDict())  # an eviction above may have emptied it
    last_used[(kind, model_id)] = time.monotonic()
    last_used.move_to_end((kind, model_id))
    return ctx.cache[key]


def drop_model(kind: str, model_id: str, cache: dict[str, Any]) -> None:
    """Forget a :func:`cached_model` model (its memory is freed once no job holds it)."""
    cache.pop(f"{kind}-model:{model_id}", None)
    last_used = cache.get(_LAST_USED, {})
    last_used.pop((kind, model_id), None)
    if not last_used:
        cache.pop(_LAST_USED, None)


def cached_model_ids(cache: dict[str, Any]) -> set[str]:
    """Model ids :func:`cached_model` holds in ``cache``."""
    return {model_id for _, model_id in cache.get(_LAST_USED, {})}


def evict_idle_models(cache: dict[str, Any], settings: Any, now: float | None = None) -> set[str]:
    """Drop the models unused for longer than their engine's ``model_idle_s``; returns their ids. Called by
    workers between jobs."""
    now = time.monotonic() if now is None else now
    evicted = set()
    for (kind, model_id), last in list(cache.get(_LAST_USED, {}).items()):
        _, idle_s = _model_limits(settings, kind)
        if idle_s is not None and now - last > idle_s:
            drop_model(kind, model_id, cache)
            evicted.add(model_id)
    return evicted


def file_stem(*parts: object) -> str:
    """A portable file name stem from ``parts``: lower case, ``[a-z0-9.-]`` runs joined by ``_``
    (``("J Dilla", "90bpm")`` -> ``"j-dilla_90bpm"``)."""
    cleaned = (re.sub(r"[^a-z0-9.]+", "-", str(part).lower()).strip("-.") for part in parts)
    return "_".join(part for part in cleaned if part)[:120] or "output"


PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"
"""The API's RFC 9457 problem schema, for the OpenAPI ``responses`` of an engine's own routes."""


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` of an engine router's operation for problems it raises (EngineProblem)."""
    from http import HTTPStatus

    content = {"application/problem+json": {"schema": {"$ref": PROBLEM_SCHEMA_REF}}}
    return {status: {"description": HTTPStatus(status).phrase, "content": content} for status in statuses}


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
    ``settings``: the effective ``cadenza.settings.Settings`` (read-only by convention); an engine reads
    its own section with ``settings.engine(kind)``.
    ``inputs``: the job's files by declared input name (:class:`InputSpec`); optional inputs that were
    not sent are absent.
    """

    workdir: Path
    models_dir: Path
    cache: dict[str, Any]
    device: str = "cpu"
    settings: Any = None
    inputs: dict[str, Path] = field(default_factory=dict)
    input_path: Path | None = None

    def __post_init__(self) -> None:
        # ``input_path``: the only (or first) input, for single-input engines and callers that name one file
        if self.input_path is None and self.inputs:
            self.input_path = next(iter(self.inputs.values()))
        elif self.input_path is not None and not self.inputs:
            self.inputs = {"file": self.input_path}


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
class InputSpec:
    """A file input an engine declares (``EngineSpec.inputs``).

    ``name``: the multipart part name and JSON field name (an upload id) of the input, e.g. ``"file"``.
    ``kind``: what it holds (``"audio"``, ``"midi"``, …): documentation and ``POST /v1/uploads`` checks.
    ``required``: whether a job needs it. ``extensions``: the usual file name extensions, first = default.
    ``max_bytes``: the size limit, an int or ``max_bytes(engine_settings) -> int`` (the engine's section).
    ``probe``: ``probe(path, settings) -> info``: checks the file (format from content, duration, …)
    before a job is created and returns JSON-able facts stored with the job; raises UploadRejected (4xx).
    ``example``: ``example(folder) -> path`` writes a small valid file (conformance and fuzz tests).
    """

    name: str
    kind: str
    description: str
    required: bool = True
    extensions: tuple[str, ...] = ()
    max_bytes: int | Callable[[Any], int] | str = 200 * 1024 * 1024
    probe: Callable[[Path, Any], dict[str, Any]] | str | None = None
    example: Callable[[Path], Path] | str | None = None

    def limit(self, engine_settings: Any) -> int:
        """The size limit in bytes under ``engine_settings`` (the engine's settings section)."""
        value = self.max_bytes
        if isinstance(value, int):
            return value
        return int(resolve(value)(engine_settings))

    def run_probe(self, path: Path, settings: Any) -> dict[str, Any]:
        return dict(resolve(self.probe)(path, settings) or {}) if self.probe is not None else {}


@dataclass(frozen=True)
class CommandSpec:
    """A CLI command an engine adds: ``cadenza <name>`` (``group=""``), ``cadenza train <name>``, …

    ``target`` is ``"module:function"``, a Typer-style function imported only when the command runs;
    ``help`` is shown by ``cadenza --help`` without importing anything.
    """

    group: str
    name: str
    target: str
    help: str


@dataclass(frozen=True)
class QuickSpec:
    """A synchronous ``GET`` form of an engine's submit route, for small requests: ``GET /v1/<route>/<path>``
    with the request's fields as query parameters answers the output file itself (e.g. a MIDI file).

    Underneath it is an ordinary job (listed, owned, rate-limited, counted like any other): the API submits it,
    waits up to ``prefer_wait_max_s`` and answers the first output whose name ends with ``suffix``; a job that
    is not done by then is answered 202 with the job, like ``POST`` with ``Prefer: wait``.

    ``path``: the route's last segment (``"quick.mid"``). ``suffix``: which output to answer (``".mid"``).
    ``media_type``: that output's type, for the OpenAPI. ``check(params, settings)``: optional; raises
    EngineInputError (422) when a request is too big for the quick form. ``description``: for the OpenAPI.
    """

    path: str
    suffix: str
    media_type: str
    description: str
    check: Callable[[BaseModel, Any], None] | str | None = None


@dataclass(frozen=True)
class Readiness:
    ok: bool
    detail: str


@dataclass(frozen=True)
class EngineSpec:
    """Declaration of one engine.

    ``kind``: job kind stored in the database (``"drums"``); must equal its registry key.
    ``route``: path segment of the submit route under ``/v1`` (``"drums"``, ``"separations"``).
    ``request_model``: the Pydantic v2 request schema (JSON body, form fields or the ``params`` part).
    ``run``: ``run(params, progress, ctx) -> EngineResult``; runs in a worker process.
    ``list_models``: ``list_models(models_dir) -> list[ModelInfo]``; cheap, no weights loaded, the
    engine's default model first.
    ``load_model`` / ``unload_model``: optional, keep or drop a model in ``ctx.cache``.
    ``retry_on_crash``: whether a job whose worker process died is retried once.
    ``inputs``: the declared file inputs (none: the submit route takes JSON only).
    ``validate_request(params, settings) -> warnings``: cheap checks before a job is created (e.g. the
    requested model's weights exist); raises EngineInputError -> 422.
    ``validate_inputs(params, inputs, settings) -> warnings``: checks of the request against its probed
    inputs (``{input name: probe facts}``, optional inputs absent when not sent), once they are resolved
    and before the job is created; may complete ``params`` from them (a reference file's tempo); raises
    EngineInputError -> 422. Run by the API's submit route and the engine's CLI, not by the worker (the
    stored request is already complete).
    ``settings_model``: the engine's settings section (``engines.<kind>.*`` in YAML,
    ``CADENZA_ENGINES__<KIND>__*`` in the environment), read with ``settings.engine(kind)``.
    ``router``: ``"module:attribute"`` of a FastAPI ``APIRouter`` with extra read routes, mounted as is.
    ``commands``: CLI commands. ``readiness(settings) -> Readiness``: the engine's own readiness (default:
    its default model's weights are present); it never makes the whole server unready.
    ``openapi_examples``: ``{"job": <job view>, "model": <model entry>}`` from a real run, shown in the
    OpenAPI of the job and model routes.
    ``catalogues(settings) -> {name: [entry names]}``: re-reads the files users edit (style and preset
    catalogues) for a hot reload; raises ValueError naming the file and entry when one is invalid.
    ``quick``: an optional synchronous ``GET`` form of the submit route (:class:`QuickSpec`).
    """

    kind: str
    route: str
    summary: str
    request_model: type[BaseModel]
    run: Callable[[BaseModel, Progress, RunContext], EngineResult] | str
    list_models: Callable[[Path], list[ModelInfo]] | str
    load_model: Callable[[str, RunContext], None] | str | None = None
    unload_model: Callable[[str, RunContext], None] | str | None = None
    retry_on_crash: bool = True
    example: dict[str, Any] | None = None
    validate_request: Callable[[BaseModel, Any], list[str]] | str | None = None
    validate_inputs: Callable[[BaseModel, dict[str, dict[str, Any]], Any], list[str]] | str | None = None
    inputs: tuple[InputSpec, ...] = ()
    settings_model: type[BaseModel] | None = None
    router: str | None = None
    commands: tuple[CommandSpec, ...] = ()
    readiness: Callable[[Any], Readiness] | str | None = None
    openapi_examples: dict[str, Any] = field(default_factory=dict)
    catalogues: Callable[[Any], dict[str, list[str]]] | str | None = None
    quick: QuickSpec | None = None

    def resolve(self, name: str) -> Callable[..., Any] | None:
        """The callable of field ``name`` (imported on first use when given as an import string)."""
        value = getattr(self, name)
        return None if value is None else resolve(value)

    def input(self, name: str) -> InputSpec:
        """The declared input ``name``. Raises KeyError."""
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def validate(self, raw: dict[str, Any], settings: Any) -> tuple[BaseModel, list[str]]:
        """The one validation path (API routes, upload references, worker, CLI): the request model with
        ``{"settings": settings}`` as validation context, then ``validate_request``.

        Raises ``pydantic.ValidationError`` (form) and EngineInputError (cannot be served).
        """
        params = self.request_model.model_validate(raw, context={"settings": settings})
        check = self.resolve("validate_request")
        warnings = list(check(params, settings) or []) if check is not None else []
        return params, warnings

    def check_inputs(self, params: BaseModel, inputs: dict[str, dict[str, Any]], settings: Any) -> list[str]:
        """``validate_inputs`` of the engine (see the class docstring); no hook: no warnings."""
        check = self.resolve("validate_inputs")
        return list(check(params, inputs, settings) or []) if check is not None else []

    def models(self, models_dir: Path) -> list[ModelInfo]:
        return list(self.resolve("list_models")(Path(models_dir)))  # type: ignore[misc]

    def check_ready(self, settings: Any) -> Readiness:
        """The engine's readiness: its own ``readiness`` hook, else its default model's weights."""
        hook = self.resolve("readiness")
        if hook is not None:
            return hook(settings)
        models = self.models(settings.models_dir)
        if not models:
            return Readiness(True, "no models")
        default = models[0]
        if default.weights_present:
            return Readiness(True, f"default model {default.name}: weights present")
        return Readiness(False, f"default model {default.name}: missing " + ", ".join(default.missing_files))


def resolve(target: Any) -> Any:
    """``"package.module:attribute"`` → the attribute (imported once); anything else is returned as is."""
    if isinstance(target, str):
        return _import_target(target)
    return target


@cache
def _import_target(target: str) -> Any:
    module, sep, attribute = target.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"import string {target!r} must look like 'package.module:attribute'")
    obj: Any = importlib.import_module(module)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj
