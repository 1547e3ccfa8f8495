"""``cadenza drums …``: generate a groove locally, without a server (declared in ``ENGINE.commands``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from cadenza.engines.base import EngineInputError, EngineProblem, RunContext
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
    time_signature: Annotated[
        str | None, typer.Option("--time-signature", "-t", help="e.g. 4/4, 3/4, 6/8 (default 4/4, or the reference's).")
    ] = None,
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
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            "--reference-midi",
            help="A drum MIDI file you played or programmed: grooves in its feel (tempo and meter default to its).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    reference_mode: Annotated[
        str, typer.Option("--reference-mode", help="feel (new grooves in its feel) or vary (variations of it).")
    ] = "feel",
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
    raw = {
        "producer_style": style,
        "bars": bars,
        "tempo": tempo,
        "humanize": humanize,
        "pattern_type": pattern_type,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "seed": seed,
        "reference_mode": reference_mode,
        "formats": ["midi", *(audio or [])],
    }
    try:
        if time_signature is not None:
            try:
                raw["time_signature"] = [int(part) for part in time_signature.split("/")]
            except ValueError as exc:
                raise ValueError(f"--time-signature must look like 4/4: {exc}") from None
        params, _ = ENGINE.validate(raw, settings)  # the API's validation path (warnings come with the result)
        inputs = {}
        if reference is not None:
            from cadenza.engines.drums.engine import probe_reference

            inputs["reference_midi"] = probe_reference(reference, settings)
        ENGINE.check_inputs(params, inputs, settings)  # completes tempo and meter as the API does
    except (ValueError, EngineProblem) as exc:
        err.print(f"error: {getattr(exc, 'detail', exc)}", markup=False)
        raise typer.Exit(2) from None
    numerator, denominator = params.time_signature

    from cadenza.engines.drums.engine import run

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with workdir_in(out) as work, Progress(*columns, console=err, transient=True) as bar:
        ctx = RunContext(
            workdir=work,
            models_dir=settings.models_dir,
            cache={},
            device=settings.device,
            settings=settings,
            inputs={"reference_midi": reference} if reference is not None else {},
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
    if "reference" in meta:
        distance = meta["reference"]["distance"]
        console.print(
            f"feel vs the reference ({meta['reference']['mode']}): timing {distance['timing_ms']:g} ms, "
            f"velocity {distance['velocity']:g}, density {distance['density']:g}, pattern {distance['pattern']:g}"
        )
    for path in paths:
        console.print(str(path), soft_wrap=True)
