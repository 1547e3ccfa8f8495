"""A tiny engine for the job-layer tests only: exercises job semantics (progress, cancel, crashes,
errors, outputs, model cache), not music. Registered by the tests under the kind ``testjob``."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cadenza.engines.base import EngineInputError, EngineResult, EngineSpec, ModelInfo, Output, RunContext

MODEL_NAME = "test-model"


class TestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["ok", "kill", "exit", "raise", "input_error", "no_progress", "bad_output"] = "ok"
    duration_s: float = Field(0.0, ge=0, le=60)
    step_s: float = Field(0.01, gt=0, le=1)
    payload: str = "hello"
    tag: str = ""
    log_path: str | None = None
    crash_marker: str | None = None
    rewrite_each_step: bool = False  # like an engine writing block files: recreates its workdir if needed


def _run(params: TestRequest, progress, ctx: RunContext) -> EngineResult:  # type: ignore[no-untyped-def]
    if params.log_path:
        with open(params.log_path, "a") as fh:
            fh.write(f"{params.tag} {os.getpid()}\n")
    ctx.cache["runs"] = ctx.cache.get("runs", 0) + 1
    (ctx.workdir / "partial.bin").write_bytes(b"\0" * 1024)
    progress(0, "start")
    if params.crash_marker:  # crash on the first attempt only
        marker = Path(params.crash_marker)
        if not marker.exists():
            marker.write_text("crashed once")
            os.kill(os.getpid(), signal.SIGKILL)
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < params.duration_s:
        if params.mode == "no_progress":
            time.sleep(params.duration_s)
            break
        if params.rewrite_each_step:
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            (ctx.workdir / "partial.bin").write_bytes(b"\0" * 1024)
        progress(100.0 * elapsed / params.duration_s, "working")
        if params.mode == "kill" and elapsed > params.duration_s / 2:
            os.kill(os.getpid(), signal.SIGKILL)
        if params.mode == "exit" and elapsed > params.duration_s / 2:
            os._exit(3)
        time.sleep(params.step_s)
    if params.mode == "raise":
        raise RuntimeError("engine exploded")
    if params.mode == "input_error":
        raise EngineInputError("the requested thing cannot be made")
    if params.mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if params.mode == "exit":
        os._exit(3)
    out = ctx.workdir / "result.txt"
    out.write_text(params.payload)
    (ctx.workdir / "partial.bin").unlink()
    outputs = [Output("result.txt", "text/plain", out, {"chars": len(params.payload)})]
    if params.mode == "bad_output":
        outputs.append(Output("../escape.txt", "text/plain", out))
    progress(100, "done")
    return EngineResult(
        outputs=outputs,
        metadata={"runs_in_process": ctx.cache["runs"], "pid": os.getpid(), "input": _read_input(ctx)},
        warnings=["test warning"],
    )


def _read_input(ctx: RunContext) -> str | None:
    return ctx.input_path.read_text() if ctx.input_path else None


def _list_models(models_dir: Path) -> list[ModelInfo]:
    return [
        ModelInfo(
            name=MODEL_NAME,
            engine="testjob",
            version="1",
            description="test",
            licence="none",
            data_source="none",
            size_bytes=None,
            weights_present=True,
        )
    ]


def _load(name: str, ctx: RunContext) -> None:
    ctx.cache[f"model:{name}"] = object()


def _unload(name: str, ctx: RunContext) -> None:
    ctx.cache.pop(f"model:{name}", None)


def make_spec(kind: str, retry_on_crash: bool) -> EngineSpec:
    return EngineSpec(
        kind=kind,
        route=kind,
        summary="job-layer test engine",
        request_model=TestRequest,
        run=_run,
        list_models=_list_models,
        load_model=_load,
        unload_model=_unload,
        retry_on_crash=retry_on_crash,
    )


ENGINE = make_spec("testjob", retry_on_crash=False)
