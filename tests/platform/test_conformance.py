"""Conformance of every registered engine (the built-in ones and the tests' plugin) to the engine contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import PLUGINS, platform_settings
from fastapi import APIRouter

from cadenza.api.deps import JobOut
from cadenza.api.routes.models import ModelOut
from cadenza.engines import registry
from cadenza.engines.base import (
    RESERVED_INPUT_NAMES,
    EngineProblem,
    JobCancelled,
    RequestModel,
    RunContext,
    resolve,
)
from cadenza.jobs.options import RESERVED_OPTION_NAMES
from cadenza.jobs.service import OUTPUT_NAME_RE

ENGINES = registry.for_plugins(PLUGINS)
MEDIA_TYPE_RE = re.compile(r"^[a-z]+/[a-z0-9.+-]+$")


@pytest.fixture(params=ENGINES.kinds)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def _context(spec, settings, tmp_path: Path) -> RunContext:  # type: ignore[no-untyped-def]
    inputs = {}
    for declared in spec.inputs:
        folder = tmp_path / "inputs" / declared.name
        folder.mkdir(parents=True)
        assert declared.example is not None, f"{spec.kind}: input {declared.name} has no example file"
        inputs[declared.name] = resolve(declared.example)(folder)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return RunContext(workdir=workdir, models_dir=settings.models_dir, cache={}, settings=settings, inputs=inputs)


def test_declaration(kind: str) -> None:
    spec = ENGINES.get(kind)
    assert spec.kind == kind and re.fullmatch(r"[a-z][a-z0-9-]*", spec.route)
    assert spec.example is not None and spec.summary
    assert issubclass(spec.request_model, RequestModel)  # a boolean is never read as a number (1 or 0)
    names = [declared.name for declared in spec.inputs]
    assert len(names) == len(set(names)) and not set(names) & RESERVED_INPUT_NAMES
    assert not set(names) & set(spec.request_model.model_fields)
    # job-level options (priority, metadata, webhook, webhook_events_filter) are the platform's names
    assert not (set(names) | set(spec.request_model.model_fields)) & RESERVED_OPTION_NAMES
    for command in spec.commands:
        assert callable(resolve(command.target)) and command.help
    if spec.router is not None:
        assert isinstance(resolve(spec.router), APIRouter)
    if spec.settings_model is not None:
        spec.settings_model()  # every engine setting has a default
    for name in ("run", "list_models", "load_model", "unload_model", "validate_request"):
        assert getattr(spec, name) is None or callable(spec.resolve(name))
    if "job" in spec.openapi_examples:
        assert JobOut.model_validate(spec.openapi_examples["job"]).kind == kind
    if "model" in spec.openapi_examples:
        assert ModelOut.model_validate(spec.openapi_examples["model"]).engine == kind


def test_default_model_is_listed_first_and_usable(kind: str, tmp_path: Path) -> None:
    spec = ENGINES.get(kind)
    models = spec.models(tmp_path / "models")  # an empty models folder: a fresh install
    assert all(info.engine == kind for info in models)
    if models:
        assert models[0].weights_present, f"{kind}: the default model must work without downloads"
        assert spec.check_ready(platform_settings(tmp_path)).ok


def test_inputs_reject_a_wrong_format_with_a_4xx(kind: str, tmp_path: Path) -> None:
    spec = ENGINES.get(kind)
    settings = platform_settings(tmp_path)
    for declared in spec.inputs:
        wrong = tmp_path / f"wrong{declared.extensions[0] if declared.extensions else ''}"
        wrong.write_bytes(b"This is plain text, not a " + declared.kind.encode() + b" file.\n" * 50)
        with pytest.raises(EngineProblem) as caught:
            declared.run_probe(wrong, settings)
        assert 400 <= caught.value.status < 500 and caught.value.detail
        assert declared.limit(settings.engine(kind) if spec.settings_model else None) > 0


def test_example_validates_and_runs_with_safe_outputs_and_progress(kind: str, tmp_path: Path) -> None:
    spec = ENGINES.get(kind)
    settings = platform_settings(tmp_path)
    params, warnings = spec.validate(spec.example, settings)
    assert isinstance(warnings, list)
    ctx = _context(spec, settings, tmp_path)
    for declared in spec.inputs:
        declared.run_probe(ctx.inputs[declared.name], settings)  # the example input passes its own probe
    calls: list[float] = []
    result = spec.resolve("run")(params, lambda percent, stage="": calls.append(percent), ctx)
    assert calls and all(0.0 <= p <= 100.0 for p in calls) and calls[-1] == 100.0, calls
    assert result.outputs
    for output in result.outputs:
        assert OUTPUT_NAME_RE.fullmatch(output.name) and MEDIA_TYPE_RE.fullmatch(output.media_type)
        assert Path(output.path).resolve().is_relative_to(ctx.workdir.resolve()) and Path(output.path).is_file()


def test_run_honours_cancel(kind: str, tmp_path: Path) -> None:
    spec = ENGINES.get(kind)
    settings = platform_settings(tmp_path)
    params, _ = spec.validate(spec.example, settings)
    ctx = _context(spec, settings, tmp_path)
    calls: list[float] = []

    def progress(percent: float, stage: str = "") -> None:
        calls.append(percent)
        raise JobCancelled("cancelled by the test")

    with pytest.raises(JobCancelled):
        spec.resolve("run")(params, progress, ctx)
    assert len(calls) == 1  # the engine stopped at the first progress call
