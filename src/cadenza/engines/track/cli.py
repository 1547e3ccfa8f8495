"""``cadenza track "PROMPT" …``: make a track locally, without a server (declared in ``ENGINE.commands``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cadenza.engines.base import EngineInputError, RunContext
from cadenza.engines.cli_files import WouldOverwrite, place_outputs, workdir_in
from cadenza.engines.track import ENGINE
from cadenza.settings import load_settings

__all__ = ["run_command"]


def run_command(
    prompt: Annotated[str, typer.Argument(help="What to make: 'lo-fi hip hop, 84 bpm, A minor, 60 seconds'.")],
    duration_s: Annotated[float | None, typer.Option("--duration", "-d", help="Seconds, 5-300.")] = None,
    tempo: Annotated[float | None, typer.Option(help="BPM (overrides the prompt).")] = None,
    key: Annotated[str | None, typer.Option("--key", "-k", help="'A minor', 'F# dorian'…")] = None,
    time_signature: Annotated[str | None, typer.Option("--time-signature", "-t", help="e.g. 3/4, 6/8.")] = None,
    genre: Annotated[str | None, typer.Option(help="A genre of the catalogue (overrides the prompt).")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="A seamless loop (whole bars).")] = False,
    lyrics: Annotated[str | None, typer.Option(help="Words for the lead, one syllable per note.")] = None,
    stems: Annotated[bool, typer.Option("--stems/--no-stems", help="Write one stem per part.")] = True,
    formats: Annotated[list[str] | None, typer.Option("--format", "-f", help="wav, flac, mp3 (repeatable).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (omitted: random, printed).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Replace files of the same name in --out.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings file.")] = None,
) -> None:
    """Make a mastered song from a text prompt: the mix, stems, arrangement.mid and track.json into --out."""
    console, err = Console(), Console(stderr=True)
    try:
        settings = load_settings(config)
    except ValueError as exc:
        err.print(f"Invalid configuration: {exc}", markup=False)
        raise typer.Exit(2) from None
    raw: dict = {"prompt": prompt, "loop": loop, "stems": stems, "seed": seed, "formats": formats or ["wav", "mp3"]}
    for name, value in (("duration_s", duration_s), ("tempo", tempo), ("key", key), ("genre", genre),
                        ("lyrics", lyrics), ("time_signature", time_signature)):  # fmt: skip
        if value is not None:
            raw[name] = value
    try:
        params, warnings = ENGINE.validate(raw, settings)
    except ValueError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    from cadenza.engines.track.engine import run

    with workdir_in(out) as work:
        ctx = RunContext(workdir=work, models_dir=settings.models_dir, cache={}, settings=settings)
        try:
            result = run(params, lambda percent, stage="": None, ctx)
            paths = place_outputs(result.outputs, out, force=force)
        except (EngineInputError, WouldOverwrite) as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(1) from None
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    meta = result.metadata
    console.print(
        f"{meta['genre']}, {meta['tempo_bpm']:g} BPM, {meta['key']}, {meta['duration_s']:.2f} s, "
        f"{meta['integrated_lufs']:.1f} LUFS, {meta['true_peak_dbtp']:.1f} dBTP, seed {meta['seed']} "
        f"({meta['compute_s']:.1f} s)"
    )
    for path in paths:
        console.print(str(path), soft_wrap=True)
