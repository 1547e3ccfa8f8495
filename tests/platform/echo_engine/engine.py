"""Runtime of the echo test engine."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import mido

from cadenza.engines.base import EngineResult, ModelInfo, Output, Progress, RunContext, UploadRejected


def max_midi_bytes(section: Any) -> int:
    return int(section.max_midi_bytes)


def probe_midi(path: Path, settings: Any) -> dict[str, Any]:
    """Parse the file as a Standard MIDI File: 415 when it is not one, facts when it is."""
    data = Path(path).read_bytes()
    if not data.startswith(b"MThd"):
        raise UploadRejected(415, "Not MIDI", "The seed_midi file is not a Standard MIDI File (no MThd header).")
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except (OSError, EOFError, ValueError) as exc:
        raise UploadRejected(422, "Corrupt MIDI", f"The seed_midi file cannot be read: {exc}") from exc
    notes = sum(1 for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0)
    return {"format": "midi", "notes": notes, "ppq": midi.ticks_per_beat}


def example_midi(folder: Path) -> Path:
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    for pitch in (60, 64, 67):
        track.append(mido.Message("note_on", note=pitch, velocity=90, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=240))
    midi.tracks.append(track)
    path = Path(folder) / "example.mid"
    midi.save(str(path))
    return path


def list_models(models_dir: Path) -> list[ModelInfo]:
    return []


def run(params: Any, progress: Progress, ctx: RunContext) -> EngineResult:
    progress(0.0, "echoing")
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < params.sleep_s:
        progress(min(99.0, 100.0 * elapsed / params.sleep_s), "sleeping")
        time.sleep(0.05)
    notes = None
    if "seed_midi" in ctx.inputs:
        notes = probe_midi(ctx.inputs["seed_midi"], ctx.settings)["notes"]
    prefix = ctx.settings.engine("echo").prefix if ctx.settings is not None else ""
    lines = []
    for index in range(params.repeat):
        progress(100.0 * index / params.repeat, "echoing")
        lines.append(prefix + params.text)
    out = Path(ctx.workdir) / "echo.txt"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    progress(100.0, "done")
    return EngineResult([Output("echo.txt", "text/plain", out, {"lines": len(lines)})], {"notes": notes})
