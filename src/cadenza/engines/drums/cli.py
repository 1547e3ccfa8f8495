"""``cadenza drums …``: generate a groove locally, without a server (declared in ``ENGINE.commands``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from cadenza.engines.base import EngineInputError, RunContext
from cadenza.engines.cli_files import WouldOverwrite, place_outputs, workdir_in
from cadenza.engines.drums import ENGINE
from cadenza.engines.drums.config import section
from cadenza.engines.drums.styles import StyleCatalogError, load_catalog
from cadenza.settings import load_settings

__all__ = ["run_command"]


def run_command(
    style: Annotated[
        str, typer.Option("--style", "--producer-style", "-s", help="Producer style (see --list-styles).")
    ] = "J Dilla",
    bars: Annotated[int, typer.Option(help="Bars, 1–32.")] = 4,
    tempo: Annotated[
        float | None, typer.Option(help="Tempo in BPM, 60–200; default: the middle of the style's range.")
    ] = None,
    time_signature: Annotated[str, typer.Option("--time-signature", "-t", help="e.g. 4/4, 3/4, 6/8.")] = "4/4",
    pattern_type: Annotated[
        str, typer.Option("--pattern-type", "--pattern", help="intro, verse, chorus, bridge or outro.")
    ] = "verse",
    humanize: Annotated[
        bool, typer.Option("--humanize/--quantize", help="Style humanization or a quantised grid.")
    ] = True,
    temperature: Annotated[float, typer.Option(help="Sampling temperature, 0.1–2.0.")] = 0.9,
    top_k: Annotated[int, typer.Option(help="Top-k sampling, 0 = off.")] = 0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass, (0, 1].")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Random seed (omitted: random, printed).")] = None,
    audio: Annotated[
        list[str] | None,
        typer.Option(
            "--format", "--audio", "-f", help="Audio preview: wav, flac or mp3 (repeatable); MIDI+JSON always."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Replace files of the same name in --out.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings file.")] = None,
    list_styles: Annotated[bool, typer.Option("--list-styles", help="List the styles and exit.")] = False,
) -> None:
    """Generate a drum groove in a producer's style: writes <style>_<tempo>bpm_<bars>bars_s<seed>.mid, its
    _pattern.json and optional audio into --out (never replacing a file without --force)."""
    console = Console()
    err = Console(stderr=True)
    try:
        settings = load_settings(config)
    except ValueError as exc:  # pydantic ValidationError, unknown CADENZA_* variables
        err.print(f"Invalid configuration: {exc}", markup=False)
        raise typer.Exit(2) from None
    try:
        catalog = load_catalog(section(settings).styles_path)
    except StyleCatalogError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    if list_styles:
        for entry in catalog.styles:
            low, high = entry.preferred_tempo_range
            console.print(f"[bold]{entry.name}[/bold] ({low:g}–{high:g} BPM): {entry.description}")
        return
    try:
        numerator, denominator = (int(part) for part in time_signature.split("/"))
        params, _ = ENGINE.validate(
            {
                "producer_style": style,
                "bars": bars,
                "tempo": tempo,
                "time_signature": [numerator, denominator],
                "humanize": humanize,
                "pattern_type": pattern_type,
                "temperature": temperature,
                "top_k": top_k,
                "top_p": top_p,
                "seed": seed,
                "formats": ["midi", *(audio or [])],
            },
            settings,
        )  # the API's validation path (warnings come with the result)
    except ValueError as exc:
        message = exc if isinstance(exc, ValidationError) else f"--time-signature must look like 4/4: {exc}"
        err.print(f"error: {message}", markup=False)
        raise typer.Exit(2) from None

    from cadenza.engines.drums.engine import run

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with workdir_in(out) as work, Progress(*columns, console=err, transient=True) as bar:
        ctx = RunContext(
            workdir=work, models_dir=settings.models_dir, cache={}, device=settings.device, settings=settings
        )
        task = bar.add_task("starting", total=100)
        try:
            result = run(params, lambda percent, stage="": bar.update(task, completed=percent, description=stage), ctx)
            paths = place_outputs(result.outputs, out, force=force)
        except (EngineInputError, WouldOverwrite) as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(1) from None
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    meta = result.metadata
    console.print(
        f"{meta['style']}, {meta['bars']} bars at {meta['tempo_bpm']:g} BPM in {numerator}/{denominator}, "
        f"{meta['pattern_type']}, seed {meta['seed']} ({meta['model_version']}, {meta['compute_s']:.2f} s)"
    )
    for path in paths:
        console.print(str(path), soft_wrap=True)
