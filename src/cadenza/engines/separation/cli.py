"""CLI commands of the separation engine, declared in ``ENGINE.commands``:
``cadenza separate SONG`` (:func:`run_command`), ``cadenza demo-song`` (:func:`demo_song_command`) and
``cadenza eval separation`` (:func:`eval_command`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer


def _settings(config: Path | None = None):
    from cadenza.settings import load_settings

    return load_settings(config)


def run_command(
    song: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="Audio file to separate."),
    model: str | None = typer.Option(None, "--model", "-m", help="hpss or a Demucs model; default: best present."),
    stems: list[str] | None = typer.Option(None, "--stem", "-s", help="Stem to write (repeatable); default all."),
    two_stems: str | None = typer.Option(None, "--two-stems", help="Write STEM and no_STEM only."),
    output_format: str = typer.Option("wav", "--format", "-f", help="wav, flac or mp3."),
    pcm_type: str = typer.Option("PCM_16", "--pcm", help="PCM_16, PCM_24 or FLOAT (wav/flac)."),
    mp3_bitrate: int = typer.Option(320, "--mp3-bitrate", help="kbps, 96-320."),
    sample_rate: int | None = typer.Option(None, "--sample-rate", help="Output Hz; default the input's."),
    shifts: int = typer.Option(1, "--shifts", help="Demucs random shifts (0-20)."),
    overlap: float = typer.Option(0.25, "--overlap", help="Demucs segment overlap (0-0.99)."),
    segment_s: float | None = typer.Option(None, "--segment", help="Demucs segment s / hpss block s."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda[:N]; default the setting."),
    clip: str = typer.Option("rescale", "--clip", help="rescale or clamp."),
    margin: float = typer.Option(1.0, "--margin", help="hpss separation margin (1-10); > 1 adds 'residual'."),
    seed: int = typer.Option(0, "--seed", help="Seed of Demucs' random shifts."),
    out: Path = typer.Option(Path("separated"), "--out", "-o", help="Folder for the stems (<out>/<song name>/)."),
    force: bool = typer.Option(False, "--force", help="Replace stems already in <out>/<song name>/."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
) -> None:
    """Separate SONG into stems without a server (same engine and checks as the API)."""
    from pydantic import ValidationError
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from cadenza.engines.base import EngineInputError, RunContext, UploadRejected
    from cadenza.engines.cli_files import WouldOverwrite, place_outputs, workdir_in
    from cadenza.engines.separation import ENGINE
    from cadenza.engines.separation.engine import run

    console = Console(stderr=True)
    settings = _settings(config)
    try:
        raw = dict(
            model=model,
            stems=stems or None,
            two_stems=two_stems,
            output_format=output_format,
            pcm_type=pcm_type,
            mp3_bitrate=mp3_bitrate,
            sample_rate=sample_rate,
            shifts=shifts,
            overlap=overlap,
            segment_s=segment_s,
            device=device,
            clip=clip,
            margin=margin,
            seed=seed,
        )
        params, warnings = ENGINE.validate(raw, settings)  # the API's validation path
        for warning in warnings:
            console.print(f"[yellow]warning:[/] {warning}")
        info = ENGINE.input("file").run_probe(song, settings)
    except ValidationError as exc:
        console.print(f"[red]invalid options:[/] {exc}")
        raise typer.Exit(2) from exc
    except UploadRejected as exc:
        console.print(f"[red]{exc.title}:[/] {exc.detail}")
        raise typer.Exit(1) from exc
    except EngineInputError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"{song.name}: {info['format']} {info['sample_rate']} Hz, {info['channels']} ch, {info['duration_s']:.1f} s"
    )
    dest = out / song.stem
    try:
        with workdir_in(dest) as work:
            ctx = RunContext(
                workdir=work,
                models_dir=settings.models_dir,
                cache={},
                device=settings.device,
                settings=settings,
                input_path=song,
            )
            with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task("starting", total=100)

                def progress(percent: float, stage: str = "") -> None:
                    bar.update(task, completed=percent, description=stage or "working")

                result = run(params, progress, ctx)
            place_outputs(result.outputs, dest, force=force)
    except (EngineInputError, WouldOverwrite) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    table = Table(title=f"{result.metadata['model']} -> {dest}")
    for column in ("file", "duration s", "sample rate", "bit depth", "peak dBFS"):
        table.add_column(column)
    for output in result.outputs:
        m = output.metadata
        table.add_row(
            output.name, f"{m['duration_s']:.2f}", str(m["sample_rate"]), str(m["bit_depth"]), str(m["peak_dbfs"])
        )
    Console().print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def eval_command(
    data: Path = typer.Option(..., "--data", exists=True, file_okay=False, help="Groove MIDI Dataset folder."),
    out: Path = typer.Option(Path("docs/eval"), "--out", help="Folder for separation.json and separation.md."),
    clips: int = typer.Option(6, "--clips", min=1, help="Number of clips."),
    clip_s: float = typer.Option(10.0, "--clip-seconds", min=2.0, help="Seconds per clip."),
    seed: int = typer.Option(0, "--seed", help="Benchmark seed (which grooves, keys, patterns)."),
    soundfont: Path | None = typer.Option(None, "--soundfont", help="GM .sf2/.sf3; default TimGM6mb."),
) -> None:
    """Score hpss against the mixture floor and the oracle IRM2 ceiling on a synthetic benchmark."""
    from rich.console import Console

    from cadenza.engines.separation.lab.evaluate import evaluate, write_report

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="cadenza-eval-") as tmp:
        report = evaluate(
            data,
            Path(tmp),
            clips=clips,
            clip_s=clip_s,
            seed=seed,
            soundfont=soundfont,
            log=console.print,
        )
    json_path, md_path = write_report(report, out)
    console.print(md_path.read_text())
    console.print(f"wrote {json_path} and {md_path}")


def demo_song_command(
    dest: Path = typer.Argument(Path("song.wav"), help="Where to write the song (.wav or .flac)."),
    bars: int = typer.Option(4, min=1, max=64, help="Length in bars of 4/4 at 96 BPM."),
    force: bool = typer.Option(False, "--force", help="Replace an existing file."),
) -> None:
    """Write a short synthesized demo song (drums, bass, chords) to try separation with."""
    from rich.console import Console

    from cadenza.engines.separation.demo import write_demo_song

    if dest.exists() and not force:
        Console(stderr=True).print(f"error: {dest} already exists; pass --force to replace it", markup=False)
        raise typer.Exit(1)
    write_demo_song(dest, bars=bars)
    Console().print(str(dest), soft_wrap=True)
