"""The drums engine's ``run``: model grid → arranged, humanized hits → groove.mid, pattern.json, preview audio.

The model (``model.py``, a groove transformer trained on the Groove MIDI Dataset) is imported lazily so
importing the engine does not import torch. Loaded models stay in ``ctx.cache`` between jobs.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.engines.base import (
    EngineInputError,
    EngineResult,
    ModelInfo,
    Output,
    Progress,
    RunContext,
    UploadRejected,
    cached_model,
    drop_model,
    file_stem,
    find_weights,
)
from cadenza.engines.drums.arrange import Meter, arrange, fill_plan
from cadenza.engines.drums.config import section
from cadenza.engines.drums.feel import conditioning_feel
from cadenza.engines.drums.humanize import PlacedHit, humanize
from cadenza.engines.drums.pattern import pattern_document
from cadenza.engines.drums.schema import DrumsRequest
from cadenza.engines.drums.styles import Rules, Style, catalog_for_settings
from cadenza.music.midi import DEFAULT_PPQ, drum_midi_bytes, ticks_per_bar
from cadenza.music.midi_input import MidiLimits

CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_MODEL_ID = "groove-transformer"
LICENCE = "CC BY 4.0 (trained on GMD)"
DATA_SOURCE = "Groove MIDI Dataset v1.0.0 (Gillick, Roberts, Engel, Eck, Bamman, ICML 2019), CC BY 4.0"
CACHE_PREFIX = "drums-model:"
MIDI_NAME, JSON_NAME = "groove.mid", "pattern.json"
REFERENCE_INPUT = "reference_midi"

# Random streams derived from the request seed (numpy SeedSequence spawn keys); the model uses the seed itself.
ARRANGE_STREAM, HUMANIZE_STREAM = 1, 2


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream,))))


def checkpoint_path(model_id: str, models_dir: Path | None) -> Path:
    """Checkpoint file of ``model_id`` (``base.find_weights``). Raises EngineInputError if it has none."""
    return find_weights("drums", model_id, models_dir, CHECKPOINTS_DIR)


def load_model(model_id: str, ctx: RunContext) -> Any:
    """Load ``model_id`` into ``ctx.cache`` (if not there yet) and return the DrumModel."""

    def load() -> Any:
        from cadenza.engines.drums.model import load_model as load_checkpoint_model

        device = ctx.device if ctx.device != "auto" else "cpu"
        return load_checkpoint_model(checkpoint_path(model_id, ctx.models_dir), device=device)

    return cached_model("drums", model_id, ctx, load)


def unload_model(model_id: str, ctx: RunContext) -> None:
    """Drop ``model_id`` from ``ctx.cache``."""
    drop_model("drums", model_id, ctx.cache)


@lru_cache(maxsize=32)
def _read_checkpoint_info(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return dict(payload.get("info", {})) if isinstance(payload, dict) else {}


def _checkpoint_info(path: Path) -> dict[str, Any]:
    """The ``info`` dict of a checkpoint, read once per file version (``/ready`` and ``/v1/models`` list often)."""
    stat = path.stat()
    return _read_checkpoint_info(path, stat.st_mtime_ns, stat.st_size)


def list_models(models_dir: Path) -> list[ModelInfo]:
    """The committed checkpoint(s) and any ``<models_dir>/drums/*.pt``; reads only the checkpoint header."""
    paths = sorted(CHECKPOINTS_DIR.glob("*.pt"))
    user_dir = Path(models_dir) / "drums"
    if user_dir.is_dir():
        paths += sorted(user_dir.glob("*.pt"))
    infos = []
    for path in paths:
        model_id = path.stem.replace("_", "-")
        try:
            info = _checkpoint_info(path)
        except Exception as exc:  # a corrupt file is listed, not fatal for /v1/models
            info = {"description": f"unreadable checkpoint: {exc}"}
        infos.append(
            ModelInfo(
                name=model_id,
                engine="drums",
                version=str(info.get("version", model_id)),
                description=str(
                    info.get("description", "Groove transformer: drum grooves with micro-timing and velocity")
                ),
                licence=str(info.get("licence", info.get("license", LICENCE))),
                data_source=str(info.get("data_source", info.get("data", DATA_SOURCE))),
                size_bytes=path.stat().st_size,
                weights_present=True,
                path=str(path),
            )
        )
    if not any(info.name == DEFAULT_MODEL_ID for info in infos):
        missing = str(CHECKPOINTS_DIR / f"{DEFAULT_MODEL_ID.replace('-', '_')}.pt")
        infos.insert(
            0,
            ModelInfo(
                name=DEFAULT_MODEL_ID,
                engine="drums",
                version="",
                description="Groove transformer (not trained yet)",
                licence=LICENCE,
                data_source=DATA_SOURCE,
                size_bytes=None,
                weights_present=False,
                missing_files=[missing],
            ),
        )
    return infos


def tempo_warnings(style: Style, tempo_bpm: float) -> list[str]:
    low, high = style.preferred_tempo_range
    if low <= tempo_bpm <= high:
        return []
    return [f"tempo {tempo_bpm:g} BPM is outside {style.name}'s preferred range {low:g}–{high:g} BPM"]


def default_tempo(style: Style) -> float:
    """The middle of ``style``'s preferred tempo range, in whole BPM (the request's default)."""
    low, high = style.preferred_tempo_range
    return float(round((low + high) / 2))


def validate_request(params: DrumsRequest, settings: Any) -> list[str]:
    """Cheap checks before a job is queued: the style's model has weights. Returns warnings (tempo range)."""
    style = catalog_for_settings(settings).get(params.producer_style)
    checkpoint_path(style.model_id, getattr(settings, "models_dir", None))
    return tempo_warnings(style, params.tempo) if params.tempo is not None else []


def validate_inputs(params: DrumsRequest, inputs: dict[str, dict[str, Any]], settings: Any) -> list[str]:
    """Complete the request from its inputs so the stored request says what will run: an omitted ``tempo``
    becomes the reference's (clamped to 60–200 BPM), else the middle of the style's range; an omitted
    ``time_signature`` becomes the reference's. Raises EngineInputError (422) when an explicit time signature
    differs from the reference's (its template is per step of the reference's bar)."""
    style = catalog_for_settings(settings).get(params.producer_style)
    reference = inputs.get(REFERENCE_INPUT)
    warnings = []
    if reference is not None:
        meter = tuple(reference["time_signature"])
        if "time_signature" not in params.model_fields_set:
            params.time_signature = meter  # type: ignore[assignment]
        elif tuple(params.time_signature) != meter:
            raise EngineInputError(
                f"reference_midi is in {meter[0]}/{meter[1]} but time_signature is "
                f"{params.time_signature[0]}/{params.time_signature[1]}: omit time_signature to use the reference's"
            )
        if params.tempo is None:
            tempo = float(reference["tempo_bpm"])
            params.tempo = float(min(max(round(tempo, 2), 60.0), 200.0))
            if params.tempo != round(tempo, 2):
                warnings.append(f"reference tempo {tempo:g} BPM is outside 60–200 BPM; using {params.tempo:g} BPM")
    if params.tempo is None:
        params.tempo = default_tempo(style)
    return warnings + tempo_warnings(style, params.tempo)


def max_reference_bytes(engine_settings: Any) -> int:
    """The ``reference_midi`` size limit (``engines.drums.max_reference_bytes``)."""
    return int(engine_settings.max_reference_bytes)


def reference_limits(settings: Any) -> MidiLimits:
    """The limits a ``reference_midi`` is read within, at submit (the probe) and in the worker alike: the
    :class:`MidiLimits` defaults with ``engines.drums.max_reference_bytes``."""
    return MidiLimits(max_bytes=section(settings).max_reference_bytes)


def probe_reference(path: Path, settings: Any) -> dict[str, Any]:
    """Read ``reference_midi`` (see ``reference.read_reference``): its facts, or UploadRejected 422 saying why."""
    from cadenza.engines.drums.reference import ReferenceError, describe, read_reference

    try:
        return dict(describe(read_reference(path, reference_limits(settings))))
    except ReferenceError as exc:
        raise UploadRejected(422, "Unusable Reference MIDI", str(exc)) from None


def example_reference(folder: Path) -> Path:
    """A 2-bar 4/4 drum groove at 96 BPM (kick, snare, swung 8th hats) as a small valid reference file."""
    from cadenza.music.midi import DrumNote

    notes = []
    for bar in range(2):
        for step in range(0, 16, 2):
            late = 20 if step % 4 else 0  # swung off-beat hats
            notes.append(DrumNote(bar * 1920 + step * 120 + late, 42, 70 if step % 4 else 96))
        notes += [DrumNote(bar * 1920, 36, 110), DrumNote(bar * 1920 + 960 + 120 * (bar % 2), 36, 90)]
        notes += [DrumNote(bar * 1920 + 480 + 12, 38, 112), DrumNote(bar * 1920 + 1440 + 12, 38, 108)]
    path = Path(folder) / "reference.mid"
    path.write_bytes(
        drum_midi_bytes(notes, tempo_bpm=96.0, numerator=4, denominator=4, total_ticks=2 * 1920, ppq=DEFAULT_PPQ)
    )
    return path


@dataclass
class Groove:
    """A composed groove: the model's grid, the fill plan (one bool per bar) and the placed hits."""

    grid: Any
    fills: list[bool]
    placed: list[PlacedHit]


def compose(
    model: Any,
    style: Style,
    params: DrumsRequest,
    meter: Meter,
    seed: int,
    progress: Callable[[float], None] | None = None,
    reference: Any = None,
) -> Groove:
    """Model grid → arranged → humanized hits for ``params`` (its ``tempo`` set). With a ``reference``
    (``reference.Reference``), generation is steered towards it and hits take its feel (``reference.py``).
    Raises EngineInputError when the model rejects the request or the reference's meter differs."""
    from cadenza.engines.drums import reference as references

    fills = fill_plan(params.pattern_type, params.bars)
    bias = None
    if reference is not None:
        if reference.steps_per_bar != meter.steps_per_bar:
            raise EngineInputError(
                f"reference_midi is in {reference.numerator}/{reference.denominator}, the request in "
                f"{meter.numerator}/{meter.denominator}"
            )
        bias = references.pattern_bias(reference, fills, params.reference_mode)
        style = style.model_copy(update={"rules": Rules()})  # the reference defines the pattern vocabulary
    try:
        grid = model.generate(
            n_bars=params.bars,
            steps_per_bar=meter.steps_per_bar,
            steps_per_beat=meter.steps_per_beat,
            style_weights=dict(style.conditioning),
            fill_bars=fills,
            tempo_bpm=float(params.tempo),
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            seed=seed,
            progress=progress,
            pattern_bias=bias,
        )
    except ValueError as exc:
        raise EngineInputError(f"drums model rejected the request: {exc}") from exc
    hits = arrange(grid, style, meter, params.pattern_type, fills, _rng(seed, ARRANGE_STREAM))
    rng = _rng(seed, HUMANIZE_STREAM)
    if reference is not None:
        template = references.Template.of(reference)
        placed = references.humanize_like(hits, template, style.humanization, rng, enabled=params.humanize)
    else:
        feel = conditioning_feel(style.conditioning)
        placed = humanize(hits, style.humanization, meter, params.tempo, fills, rng, enabled=params.humanize, feel=feel)
    return Groove(grid, fills, placed)


def read_reference_input(ctx: RunContext) -> Any:
    """The job's ``reference_midi`` as a ``reference.Reference``, or None. Raises EngineInputError."""
    path = ctx.inputs.get(REFERENCE_INPUT)
    if path is None:
        return None
    from cadenza.engines.drums.reference import ReferenceError, read_reference

    try:
        return read_reference(path, reference_limits(ctx.settings))
    except ReferenceError as exc:
        raise EngineInputError(str(exc)) from None


def reference_report(reference: Any, groove: Groove, params: DrumsRequest, meter: Meter) -> dict[str, Any]:
    """How close the output's feel is to the reference's: both statistics and their distance (``feel.py``)."""
    from cadenza.engines.drums.feel import feel_distance
    from cadenza.engines.drums.reference import describe, output_stats

    reference_feel = reference.stats()
    output_feel = output_stats(
        groove.placed, n_bars=params.bars, steps_per_bar=meter.steps_per_bar, tempo_bpm=float(params.tempo)
    )
    return {
        "mode": params.reference_mode,
        "file": dict(describe(reference)),
        "distance": feel_distance(reference_feel, output_feel),
        "reference_feel": reference_feel,
        "output_feel": output_feel,
    }


def run(params: DrumsRequest, progress: Progress, ctx: RunContext) -> EngineResult:
    """Generate a groove and write ``groove.mid``, ``pattern.json`` and the requested previews into ctx.workdir.

    Raises EngineInputError (missing weights, unusable SoundFont), ValueError (bad meter), and lets
    JobCancelled from ``progress`` propagate.
    """
    started = time.perf_counter()
    catalog = catalog_for_settings(ctx.settings)
    try:
        style = catalog.get(params.producer_style)
    except KeyError as exc:
        raise EngineInputError(str(exc.args[0])) from exc
    reference = read_reference_input(ctx)
    if params.tempo is None:  # a caller that skipped validate_inputs: complete the request the same way
        from cadenza.engines.drums.reference import describe

        params = params.model_copy()
        validate_inputs(params, {REFERENCE_INPUT: dict(describe(reference))} if reference else {}, ctx.settings)
    numerator, denominator = params.time_signature
    meter = Meter.of(numerator, denominator)
    seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
    warnings = tempo_warnings(style, params.tempo)
    soundfont = _soundfont(ctx) if params.preview_formats else None  # fail before writing anything

    progress(1.0, "loading model")
    model = load_model(style.model_id, ctx)
    progress(5.0, "generating")
    groove = compose(
        model,
        style,
        params,
        meter,
        seed,
        progress=lambda percent: progress(5.0 + 0.75 * percent, "generating"),
        reference=reference,
    )
    progress(80.0, "arranging")
    total_ticks = params.bars * ticks_per_bar(numerator, denominator, DEFAULT_PPQ)
    duration_s = total_ticks / DEFAULT_PPQ * 60.0 / params.tempo
    header = {
        "style": style.name,
        "seed": seed,
        "tempo_bpm": params.tempo,
        "time_signature": [numerator, denominator],
        "ppq": DEFAULT_PPQ,
        "bars": params.bars,
        "steps_per_bar": meter.steps_per_bar,
        "steps_per_beat": meter.steps_per_beat,
        "pattern_type": params.pattern_type,
        "humanize": params.humanize,
        "fill_bars": groove.fills,
        "model_version": model.version,
        "groove_duration_s": round(duration_s, 6),
    }
    placed = groove.placed
    report = reference_report(reference, groove, params, meter) if reference is not None else None
    if report is not None:
        header["reference"] = {"mode": report["mode"], **report["file"], "distance": report["distance"]}
    document, notes = pattern_document(
        placed, header=header, meter=meter, tempo_bpm=params.tempo, total_ticks=total_ticks
    )

    progress(85.0, "writing MIDI")
    midi = drum_midi_bytes(
        notes,
        tempo_bpm=params.tempo,
        numerator=numerator,
        denominator=denominator,
        total_ticks=total_ticks,
        ppq=DEFAULT_PPQ,
        track_name=f"Cadenza drums - {style.name}",
    )
    workdir = Path(ctx.workdir)
    (workdir / MIDI_NAME).write_bytes(midi)
    # compact JSON: the C encoder (indented output goes through the pure-Python one, ~3 ms per groove)
    (workdir / JSON_NAME).write_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n", "utf-8")
    outputs = [
        Output(MIDI_NAME, "audio/midi", workdir / MIDI_NAME, {"ppq": DEFAULT_PPQ, "notes": len(notes)}),
        Output(JSON_NAME, "application/json", workdir / JSON_NAME, {"hits": len(placed)}),
    ]
    previews = params.preview_formats
    if previews:
        outputs += _render_previews(midi, previews, workdir, soundfont, progress)
    stem = file_stem(style.name, f"{params.tempo:g}bpm", f"{params.bars}bars", f"s{seed}")
    outputs = [replace(o, download_stem=stem if o.name != JSON_NAME else f"{stem}_pattern") for o in outputs]

    progress(100.0, "done")
    metadata = {
        **{k: header[k] for k in ("style", "bars", "tempo_bpm", "time_signature", "seed", "model_version")},
        "pattern_type": params.pattern_type,
        "humanize": params.humanize,
        "steps_generated": groove.grid.n_steps,
        "hits": len(placed),
        "groove_duration_s": header["groove_duration_s"],
        **({"reference": report} if report is not None else {}),
        "compute_s": round(time.perf_counter() - started, 3),
        "warnings": warnings,
    }
    return EngineResult(outputs=outputs, metadata=metadata, warnings=warnings)


def _soundfont(ctx: RunContext) -> Path:
    """The SoundFont of the settings (default TimGM6mb). Raises EngineInputError if it is unusable."""
    from cadenza.music.synth import resolve_soundfont

    try:
        return resolve_soundfont(section(ctx.settings).soundfont_path)
    except (FileNotFoundError, ValueError) as exc:
        raise EngineInputError(f"cannot render the audio preview: {exc}") from exc


def _render_previews(
    midi: bytes, formats: list[str], workdir: Path, soundfont: Path | None, progress: Progress
) -> list[Output]:
    from cadenza.music.synth import DEFAULT_SAMPLE_RATE, media_type, render_midi, write_preview

    progress(88.0, "rendering audio")
    try:
        audio = render_midi(midi, soundfont, DEFAULT_SAMPLE_RATE)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:  # symusic raises RuntimeError for a corrupt .sf2
        raise EngineInputError(f"cannot render the audio preview: {exc}") from exc
    outputs = []
    for index, output_format in enumerate(formats):
        progress(90.0 + 10.0 * index / len(formats), f"encoding {output_format}")
        path = write_preview(workdir / f"groove.{output_format}", audio, DEFAULT_SAMPLE_RATE, output_format)
        outputs.append(
            Output(
                path.name,
                media_type(output_format),
                path,
                {"sample_rate": DEFAULT_SAMPLE_RATE, "channels": int(audio.shape[0]), "frames": int(audio.shape[1])},
            )
        )
    return outputs
