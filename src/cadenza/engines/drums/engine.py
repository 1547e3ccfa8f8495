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
    file_stem,
)
from cadenza.engines.drums.arrange import Meter, arrange, fill_plan
from cadenza.engines.drums.config import section
from cadenza.engines.drums.feel import conditioning_feel
from cadenza.engines.drums.humanize import PlacedHit, humanize
from cadenza.engines.drums.pattern import pattern_document
from cadenza.engines.drums.schema import DrumsRequest
from cadenza.engines.drums.styles import Style, catalog_for_settings
from cadenza.music.midi import DEFAULT_PPQ, drum_midi_bytes, ticks_per_bar

CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_MODEL_ID = "groove-transformer"
LICENCE = "CC BY 4.0 (trained on GMD)"
DATA_SOURCE = "Groove MIDI Dataset v1.0.0 (Gillick, Roberts, Engel, Eck, Bamman, ICML 2019), CC BY 4.0"
CACHE_PREFIX = "drums-model:"
MIDI_NAME, JSON_NAME = "groove.mid", "pattern.json"

# Random streams derived from the request seed (numpy SeedSequence spawn keys); the model uses the seed itself.
ARRANGE_STREAM, HUMANIZE_STREAM = 1, 2


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream,))))


def checkpoint_path(model_id: str, models_dir: Path | None) -> Path:
    """Checkpoint file of ``model_id``: ``<models_dir>/drums/<model_id>.pt`` if present (user-trained), else the
    committed ``checkpoints/<model_id with '_'>.pt``. Raises EngineInputError if neither exists."""
    candidates = []
    if models_dir is not None:
        candidates.append(Path(models_dir) / "drums" / f"{model_id}.pt")
    candidates.append(CHECKPOINTS_DIR / f"{model_id.replace('-', '_')}.pt")
    for path in candidates:
        if path.is_file():
            return path
    raise EngineInputError(
        f"drums model {model_id!r} has no weights: looked for {', '.join(str(p) for p in candidates)}"
    )


def load_model(model_id: str, ctx: RunContext) -> Any:
    """Load ``model_id`` into ``ctx.cache`` (if not there yet) and return the DrumModel."""
    key = CACHE_PREFIX + model_id
    if key not in ctx.cache:
        from cadenza.engines.drums.model import load_model as load_checkpoint_model

        path = checkpoint_path(model_id, ctx.models_dir)
        device = ctx.device if ctx.device != "auto" else "cpu"
        try:
            ctx.cache[key] = load_checkpoint_model(path, device=device)
        except (FileNotFoundError, ValueError) as exc:
            raise EngineInputError(f"cannot load drums model {model_id!r}: {exc}") from exc
    return ctx.cache[key]


def unload_model(model_id: str, ctx: RunContext) -> None:
    """Drop ``model_id`` from ``ctx.cache``."""
    ctx.cache.pop(CACHE_PREFIX + model_id, None)


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
    """Cheap checks before a job is queued: the style's model has weights. Fills an omitted ``tempo``
    with :func:`default_tempo` (so the stored request is complete). Returns warnings (tempo range)."""
    style = catalog_for_settings(settings).get(params.producer_style)
    checkpoint_path(style.model_id, getattr(settings, "models_dir", None))
    if params.tempo is None:
        params.tempo = default_tempo(style)
    return tempo_warnings(style, params.tempo)


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
) -> Groove:
    """Model grid → arranged → humanized hits for ``params`` (its ``tempo`` set). Raises EngineInputError when
    the model rejects the request."""
    fills = fill_plan(params.pattern_type, params.bars)
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
        )
    except ValueError as exc:
        raise EngineInputError(f"drums model rejected the request: {exc}") from exc
    hits = arrange(grid, style, meter, params.pattern_type, fills, _rng(seed, ARRANGE_STREAM))
    placed = humanize(
        hits,
        style.humanization,
        meter,
        params.tempo,
        fills,
        _rng(seed, HUMANIZE_STREAM),
        enabled=params.humanize,
        feel=conditioning_feel(style.conditioning),
    )
    return Groove(grid, fills, placed)


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
    if params.tempo is None:
        params = params.model_copy(update={"tempo": default_tempo(style)})
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
    (workdir / JSON_NAME).write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
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
