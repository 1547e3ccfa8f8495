"""``cadenza echo``: the echo test engine's CLI command."""

from __future__ import annotations

import typer

from cadenza.engines.base import RunContext


def run_command(text: str = typer.Option(..., "--text"), repeat: int = typer.Option(1, "--repeat")) -> None:
    """Echo text locally."""
    import tempfile
    from pathlib import Path

    from cadenza.settings import load_settings
    from echo_engine import ENGINE

    settings = load_settings()
    params, _ = ENGINE.validate({"text": text, "repeat": repeat}, settings)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(workdir=Path(tmp), models_dir=settings.models_dir, cache={}, settings=settings)
        result = ENGINE.resolve("run")(params, lambda p, s="": None, ctx)
        print(result.outputs[0].path.read_text(), end="")
