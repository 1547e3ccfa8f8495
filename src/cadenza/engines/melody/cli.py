"""``cadenza melody …``: generate melodies locally, without a server (declared in ``ENGINE.commands``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cadenza.engines.base import EngineInputError, EngineProblem, RunContext
from cadenza.engines.cli_files import WouldOverwrite, place_outputs, workdir_in
from cadenza.engines.melody import ENGINE
from cadenza.settings import load_settings

__all__ = ["run_command"]


def run_command(
    key: Annotated[str | None, typer.Option("--key", "-k", help="'D major', 'E minor', 'A dorian'…")] = None,
    time_signature: Annotated[str | None, typer.Option("--time-signature", "-t", help="e.g. 6/8, 4/4.")] = None,
    bars: Annotated[int, typer.Option(help="Bars, 1–64 (a seed's included).")] = 8,
    tempo: Annotated[float, typer.Option(help="Tempo in BPM.")] = 110.0,
    instrument: Annotated[int, typer.Option(help="General MIDI program, 0–127 (73 = flute).")] = 73,
    profile: Annotated[str, typer.Option(help="conservative, balanced, creative (or your own).")] = "balanced",
    num_samples: Annotated[int, typer.Option("--num-samples", "-n", help="Melodies to write, 1–16.")] = 1,
    seed: Annotated[int | None, typer.Option(help="Random seed (omitted: random, printed).")] = None,
    seed_midi: Annotated[
        Path | None, typer.Option("--seed-midi", help="A MIDI melody to continue.", exists=True, dir_okay=False)
    ] = None,
    formats: Annotated[
        list[str] | None, typer.Option("--format", "-f", help="abc, notes, tokens, wav, mp3 (repeatable).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Replace files of the same name in --out.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings file.")] = None,
) -> None:
    """Generate folk-style melodies (or continue --seed-midi): MIDI and ABC files into --out."""
    console, err = Console(), Console(stderr=True)
    try:
        settings = load_settings(config)
    except ValueError as exc:
        err.print(f"Invalid configuration: {exc}", markup=False)
        raise typer.Exit(2) from None
    raw: dict = {
        "bars": bars,
        "tempo": tempo,
        "instrument": instrument,
        "profile": profile,
        "num_samples": num_samples,
        "seed": seed,
        "formats": ["midi", *(formats or ["abc"])],
    }
    try:
        if key is not None:
            raw["key"] = key
        if time_signature is not None:
            try:
                raw["time_signature"] = [int(part) for part in time_signature.split("/")]
            except ValueError:
                raise ValueError("--time-signature must look like 6/8") from None
        params, _ = ENGINE.validate(raw, settings)
        inputs = {}
        if seed_midi is not None:
            from cadenza.engines.melody.engine import probe_seed

            inputs["seed_midi"] = probe_seed(seed_midi, settings)
        warnings = ENGINE.check_inputs(params, inputs, settings)
    except (ValueError, EngineProblem) as exc:
        err.print(f"error: {getattr(exc, 'detail', exc)}", markup=False)
        raise typer.Exit(2) from None
    from cadenza.engines.melody.engine import run

    with workdir_in(out) as work:
        ctx = RunContext(
            workdir=work,
            models_dir=settings.models_dir,
            cache={},
            settings=settings,
            inputs={"seed_midi": seed_midi} if seed_midi is not None else {},
        )
        try:
            result = run(params, lambda percent, stage="": None, ctx)
            paths = place_outputs(result.outputs, out, force=force)
        except (EngineInputError, WouldOverwrite) as exc:
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(1) from None
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False)
    meta = result.metadata
    console.print(
        f"{meta['key']}, {meta['time_signature'][0]}/{meta['time_signature'][1]}, {meta['bars']} bars, "
        f"seed {meta['seed']} ({meta['compute_s']:.2f} s)"
    )
    for path in paths:
        console.print(str(path), soft_wrap=True)
