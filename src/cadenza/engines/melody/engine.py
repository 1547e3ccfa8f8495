"""The melody engine's ``run``: constrained sampling → MIDI, ABC, notes JSON, tokens, audio previews.

The model (``model.py``) is imported lazily (no torch on import) and kept in ``ctx.cache`` between jobs.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

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
from cadenza.engines.melody.config import section
from cadenza.engines.melody.corpus import (
    TICKS_PER_QUARTER,
    Note,
    bar_ticks,
    bars_spanned,
    quantise,
    tonic_shift,
    top_line,
)
from cadenza.engines.melody.presets import presets_for
from cadenza.engines.melody.schema import MAX_BARS, METERS, MelodyRequest
from cadenza.music.keys import Key, estimate_key, parse_key
from cadenza.music.midi import DEFAULT_PPQ, melody_midi_bytes
from cadenza.music.midi_input import MidiLimits, MidiRejected, first_bars, first_meter, read_midi

CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_MODEL_ID = "melody-transformer"
CACHE_PREFIX = "melody-model:"
SEED_INPUT = "seed_midi"
DEFAULT_KEY, DEFAULT_METER = "D major", (4, 4)
LICENCE = "Apache-2.0 (weights); training data public domain"
DATA_SOURCE = "O'Neill's Music of Ireland (1850) and Ryan's Mammoth Collection (1883), public domain (music21 corpus)"
#: Playable ranges (MIDI pitches) of common melodic General MIDI programs (0-based); others get DEFAULT_RANGE.
INSTRUMENT_RANGES: dict[int, tuple[int, int]] = {
    0: (48, 96), 21: (53, 89), 22: (60, 96), 40: (55, 100), 41: (48, 88), 42: (36, 76), 56: (54, 84),
    64: (56, 88), 65: (49, 81), 68: (58, 91), 71: (50, 91), 72: (74, 108), 73: (60, 96), 74: (60, 96),
    75: (60, 96), 78: (62, 96), 79: (72, 96), 105: (48, 84), 109: (58, 89),
}  # fmt: skip
DEFAULT_RANGE = (55, 88)
#: The model's register, relative to the tonic moved to C (the corpus spans 36–93 there).
MODEL_RANGE = (48, 93)


def checkpoint_path(model_id: str, models_dir: Path | None) -> Path:
    """Checkpoint file of ``model_id`` (``base.find_weights``). Raises EngineInputError if it has none."""
    return find_weights("melody", model_id, models_dir, CHECKPOINTS_DIR)


def load_model(model_id: str, ctx: RunContext) -> Any:
    """The (network, info) of ``model_id`` from ``ctx.cache`` (loaded on first use)."""

    def load() -> Any:
        from cadenza.engines.melody.model import load_checkpoint

        return load_checkpoint(checkpoint_path(model_id, ctx.models_dir))

    return cached_model("melody", model_id, ctx, load)


def unload_model(model_id: str, ctx: RunContext) -> None:
    drop_model("melody", model_id, ctx.cache)


def list_models(models_dir: Path) -> list[ModelInfo]:
    """The committed checkpoint (and ``<models_dir>/melody/*.pt``); reads only file facts."""
    paths = sorted(CHECKPOINTS_DIR.glob("*.pt")) + sorted((Path(models_dir) / "melody").glob("*.pt"))
    infos = [
        ModelInfo(
            name=p.stem.replace("_", "-"),
            engine="melody",
            version=p.stem.replace("_", "-") + "-1.0",
            description="Folk melodies and continuations (transformer over REMI tokens, key-normalised)",
            licence=LICENCE,
            data_source=DATA_SOURCE,
            size_bytes=p.stat().st_size,
            weights_present=True,
            path=str(p),
        )
        for p in paths
    ]
    if not any(info.name == DEFAULT_MODEL_ID for info in infos):
        infos.insert(
            0,
            ModelInfo(
                name=DEFAULT_MODEL_ID,
                engine="melody",
                version="",
                description="Melody transformer (not trained yet)",
                licence=LICENCE,
                data_source=DATA_SOURCE,
                size_bytes=None,
                weights_present=False,
                missing_files=[str(CHECKPOINTS_DIR / "melody_transformer.pt")],
            ),
        )
    return infos


def preset_of(params: MelodyRequest, settings: Any) -> Any:
    """The request's sampling profile. Raises EngineInputError (422) for an unknown one, listing the valid."""
    presets = presets_for(settings)
    if params.profile not in presets:
        raise EngineInputError(f"unknown profile {params.profile!r}; valid profiles: {', '.join(presets)}")
    return presets[params.profile]


def validate_request(params: MelodyRequest, settings: Any) -> list[str]:
    """The profile exists, the model has weights, and MusicXML can be written if asked (422 otherwise)."""
    from cadenza.music import musicxml

    preset_of(params, settings)
    if "musicxml" in params.formats and not musicxml.available():
        raise EngineInputError(
            "format 'musicxml' needs music21, which this server lacks: pip install 'cadenza[notation]'"
        )
    checkpoint_path(DEFAULT_MODEL_ID, getattr(settings, "models_dir", None))
    return []


def validate_inputs(params: MelodyRequest, inputs: dict[str, dict[str, Any]], settings: Any) -> list[str]:
    """Complete key and meter from the seed (or the defaults) so the stored request says what runs; 422 when
    the seed already fills the requested bars."""
    seed = inputs.get(SEED_INPUT)
    warnings = list(seed.get("warnings", [])) if seed else []
    if params.key is None:
        params.key = seed["key"] if seed else DEFAULT_KEY
    if params.time_signature is None:
        params.time_signature = tuple(seed["time_signature"]) if seed else DEFAULT_METER  # type: ignore[assignment]
    if seed:
        # The generator's own count (``bars_spanned``) in the meter that will run: a seed reaching into its
        # last bar by an eighth takes that bar, so it is refused here rather than failing in the worker.
        seed_bars = bars_spanned(seed["length_ticks"], *params.time_signature)
        if seed_bars >= params.bars:
            raise EngineInputError(
                f"the seed_midi takes {seed_bars} bars of {params.time_signature[0]}/{params.time_signature[1]}; "
                f"ask for more than {seed_bars} bars (bars counts the seed's too)"
            )
    return warnings


QUICK_MAX_BARS = 32
QUICK_FORMATS = frozenset({"midi", "abc", "notes", "tokens", "musicxml"})


def quick_check(params: MelodyRequest, settings: Any) -> None:
    """``GET /v1/melodies/quick.mid`` serves small requests only: one melody of at most
    :data:`QUICK_MAX_BARS` bars, no audio preview. Raises EngineInputError (422) naming what to change."""
    if params.num_samples != 1:
        raise EngineInputError("quick.mid answers one melody: num_samples must be 1 (use POST /v1/melodies)")
    if params.bars > QUICK_MAX_BARS:
        raise EngineInputError(f"quick.mid answers at most {QUICK_MAX_BARS} bars (use POST /v1/melodies)")
    heavy = sorted(set(params.formats) - QUICK_FORMATS)
    if heavy:
        raise EngineInputError(f"quick.mid renders no audio: drop formats {heavy} (use POST /v1/melodies)")


def max_seed_bytes(engine_settings: Any) -> int:
    return int(engine_settings.max_seed_bytes)


def seed_limits(settings: Any) -> MidiLimits:
    """The limits a ``seed_midi`` is read within, at submit (the probe) and in the worker alike: the
    :class:`MidiLimits` defaults with ``max_seed_bytes`` and ``max_seed_notes`` of ``engines.melody``."""
    engine = section(settings)
    return MidiLimits(max_bytes=engine.max_seed_bytes, max_notes=engine.max_seed_notes)


def read_seed(path: Path, settings: Any) -> tuple[list[Note], tuple[int, int], list[str]]:
    """A seed MIDI file's top line on the grid (absolute pitches), its meter, and warnings. Raises
    UploadRejected (422) for a file that is not MIDI, empty, drum-only, or has more notes than allowed."""
    try:
        score = read_midi(Path(path), "seed_midi", seed_limits(settings))
    except MidiRejected as exc:
        raise UploadRejected(422, "Unusable Seed MIDI", f"{exc}.") from None
    # A seed longer than the longest melody in the longest bar is refused by its bar count: what lies
    # further is never read.
    longest = max(METERS, key=lambda m: m[0] / m[1])
    score = first_bars(score, MAX_BARS + 1, (longest[0], longest[1]))
    melodic = [t for t in score.tracks if not t.is_drum and len(t.notes)]
    if not melodic:
        what = "only drum notes" if any(len(t.notes) for t in score.tracks) else "no notes"
        raise UploadRejected(422, "Unusable Seed MIDI", f"seed_midi has {what}: it needs a melodic track.")
    total = sum(len(t.notes) for t in melodic)
    warnings = []
    if len(melodic) > 1:
        warnings.append(f"seed_midi has {len(melodic)} melodic tracks: the top line of all of them is continued")
    line = top_line(score)
    if len(line) < total:
        warnings.append(f"seed_midi is polyphonic: reduced to its top line ({len(line)} of {total} notes)")
    notes = quantise(line, score.tpq)
    meter = first_meter(score, DEFAULT_METER)
    if not notes:
        raise UploadRejected(422, "Unusable Seed MIDI", "seed_midi has no notes that last a grid step.")
    return notes, meter, warnings


def probe_seed(path: Path, settings: Any) -> dict[str, Any]:
    """Facts of a seed_midi (key estimate, meter, bars, warnings), or UploadRejected 422 saying why."""
    notes, meter, warnings = read_seed(path, settings)
    if list(meter) not in METERS:
        raise UploadRejected(
            422, "Unusable Seed MIDI", f"seed_midi is in {meter[0]}/{meter[1]}; supported meters: {METERS}"
        )
    return seed_facts(notes, meter, warnings)


def seed_facts(notes: list[Note], meter: tuple[int, int], warnings: list[str]) -> dict[str, Any]:
    """What ``validate_inputs`` and the job's input info need to know about a read seed."""
    key, confidence = estimate_key((n.pitch, n.duration) for n in notes)
    length = bar_ticks(*meter)
    end = max(n.onset + n.duration for n in notes)
    return {
        "format": "midi",
        "notes": len(notes),
        "bars": -(-end // length),
        "ends_on_bar_line": end % length == 0,
        "length_ticks": end,
        "time_signature": list(meter),
        "key": key.name,
        "key_confidence": round(confidence, 3),
        "warnings": warnings,
    }


def example_seed(folder: Path) -> Path:
    """A 2-bar D-major phrase in 6/8 as a small valid seed file."""
    notes = [(0, 240, 62), (240, 240, 66), (480, 240, 69), (720, 480, 74), (1200, 240, 73), (1440, 240, 71)]
    data = melody_midi_bytes(
        [(t, d, p, 90) for t, d, p in notes],
        tempo_bpm=110,
        numerator=6,
        denominator=8,
        total_ticks=1440 + 480,
        program=73,
        key_name="D",
    )
    path = Path(folder) / "seed.mid"
    path.write_bytes(data)
    return path


def run(params: MelodyRequest, progress: Progress, ctx: RunContext) -> EngineResult:
    """Generate ``num_samples`` melodies and write their files into ``ctx.workdir``.

    Raises EngineInputError (missing weights, unknown profile, a seed that cannot be continued) and lets
    JobCancelled from ``progress`` propagate.
    """
    from cadenza.engines.melody.generate import Sampling, generate

    started = time.perf_counter()
    preset = preset_of(params, ctx.settings)
    sampling = Sampling(
        temperature=params.temperature if params.temperature is not None else preset.temperature,
        top_k=params.top_k if params.top_k is not None else preset.top_k,
        top_p=params.top_p if params.top_p is not None else preset.top_p,
        repetition_penalty=params.repetition_penalty
        if params.repetition_penalty is not None
        else preset.repetition_penalty,
        chromatic=preset.chromatic,
    )
    warnings: list[str] = []
    seed_notes: list[Note] = []
    seed_path = ctx.inputs.get(SEED_INPUT)
    facts: dict[str, dict[str, Any]] = {}
    if seed_path is not None:
        try:
            seed_notes, seed_meter, warnings = read_seed(seed_path, ctx.settings)
        except UploadRejected as exc:
            raise EngineInputError(exc.detail) from None
        facts[SEED_INPUT] = seed_facts(seed_notes, seed_meter, warnings)
    if params.key is None or params.time_signature is None:  # a caller that skipped validate_inputs
        validate_inputs(params, facts, ctx.settings)
    key = parse_key(params.key)
    numerator, denominator = params.time_signature
    shift = tonic_shift(key.tonic_pc)
    low, high = INSTRUMENT_RANGES.get(params.instrument, DEFAULT_RANGE)
    pitch_range = (max(low + shift, MODEL_RANGE[0]), min(high + shift, MODEL_RANGE[1]))
    if pitch_range[0] > pitch_range[1] - 12:
        raise EngineInputError(f"instrument {params.instrument}'s range leaves no octave to write in")
    normalised_seed = [Note(n.onset, n.duration, n.pitch + shift) for n in seed_notes]
    seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
    progress(1.0, "loading model")
    net, info = load_model(DEFAULT_MODEL_ID, ctx)
    workdir = Path(ctx.workdir)
    outputs: list[Output] = []
    samples = []
    length = bar_ticks(numerator, denominator)
    seed_bars = -(-max((n.onset + n.duration for n in seed_notes), default=0) // length)
    for index in range(params.num_samples):
        base = 5.0 + 85.0 * index / params.num_samples

        def sample_progress(percent: float, base: float = base, number: int = index + 1) -> None:
            progress(base + 0.85 * percent / params.num_samples, f"melody {number} of {params.num_samples}")

        try:
            melody = generate(
                net,
                mode=key.mode,
                numerator=numerator,
                denominator=denominator,
                bars=params.bars,
                pitch_range=pitch_range,
                sampling=sampling,
                seed=seed + index,
                seed_notes=normalised_seed,
                progress=sample_progress,
            )
        except ValueError as exc:
            raise EngineInputError(f"cannot generate: {exc}") from exc
        notes = [Note(n.onset, n.duration, n.pitch - shift) for n in melody.notes]
        total = params.bars * length
        if not params.include_seed and seed_notes:
            drop = (seed_bars - 1) * length if seed_bars else 0
            kept = notes[len(seed_notes) :]
            notes = [Note(n.onset - drop, n.duration, n.pitch) for n in kept]
            total -= drop
        name = f"melody_{index + 1}" if params.num_samples > 1 else "melody"
        outputs += _write_sample(name, notes, melody, params, key, total, workdir)
        in_scale = sum(n.pitch % 12 in key.scale_pcs() for n in notes) / max(1, len(notes))
        samples.append(
            {
                "name": name,
                "seed": seed + index,
                "notes": len(notes),
                "in_scale_share": round(in_scale, 4),
                "last_pitch": notes[-1].pitch if notes else None,
            }
        )
    if any(f in params.formats for f in ("wav", "mp3")):
        outputs += _previews(outputs, params, ctx, progress)
    stem = file_stem(key.name.replace("#", "sharp"), f"{numerator}-{denominator}", f"{params.bars}bars", f"s{seed}")
    outputs = [_named(o, stem) for o in outputs]
    progress(100.0, "done")
    metadata = {
        "key": key.name,
        "time_signature": [numerator, denominator],
        "tempo_bpm": params.tempo,
        "bars": params.bars,
        "seed": seed,
        "profile": params.profile,
        "sampling": sampling.__dict__,
        "samples": samples,
        "seed_midi": {"notes": len(seed_notes), "bars": seed_bars} if seed_notes else None,
        "model_version": str(info.get("version", DEFAULT_MODEL_ID)),
        "compute_s": round(time.perf_counter() - started, 3),
        "warnings": warnings,
    }
    return EngineResult(outputs=outputs, metadata=metadata, warnings=warnings)


def _named(output: Output, stem: str) -> Output:
    """Download name ``<stem>[_<sample>][_<kind>]<ext>`` (``…_s1_2_notes.json``): unique per output."""
    from dataclasses import replace

    base, *middle, _ext = output.name.split(".")
    number = base.removeprefix("melody").lstrip("_")
    return replace(output, download_stem=stem + (f"_{number}" if number else "") + "".join(f"_{m}" for m in middle))


def _write_sample(
    name: str, notes: list[Note], melody: Any, params: MelodyRequest, key: Key, total: int, workdir: Path
) -> list[Output]:
    from cadenza.music.abc import melody_abc

    numerator, denominator = params.time_signature  # type: ignore[misc]
    scale = DEFAULT_PPQ // TICKS_PER_QUARTER
    midi = melody_midi_bytes(
        [
            (
                n.onset * scale,
                n.duration * scale,
                n.pitch,
                96 if n.onset % bar_ticks(numerator, denominator) == 0 else 84,
            )
            for n in notes
        ],
        tempo_bpm=params.tempo,
        numerator=numerator,
        denominator=denominator,
        total_ticks=total * scale,
        program=params.instrument,
        key_name=_mido_key(key),
        track_name=f"Cadenza melody in {key.name}",
    )
    files = [(f"{name}.mid", "audio/midi", midi)]
    notation = {
        "key": key,
        "numerator": numerator,
        "denominator": denominator,
        "tempo_bpm": params.tempo,
        "ticks_per_quarter": TICKS_PER_QUARTER,
        "title": f"Cadenza melody in {key.name}",
        "total_ticks": total,
    }
    triples = [(n.onset, n.duration, n.pitch) for n in notes]
    if "abc" in params.formats:
        files.append((f"{name}.abc", "text/vnd.abc", melody_abc(triples, **notation).encode()))
    if "musicxml" in params.formats:
        from cadenza.music.musicxml import melody_musicxml

        data = melody_musicxml(triples, program=params.instrument, **notation)
        files.append((f"{name}.musicxml", "application/vnd.recordare.musicxml+xml", data))
    if "notes" in params.formats:
        seconds = 60.0 / params.tempo / TICKS_PER_QUARTER
        length = bar_ticks(numerator, denominator)
        names = key.spelling()
        document = [
            {
                "pitch": n.pitch,
                "name": f"{names.get(n.pitch % 12, str(n.pitch % 12))}{n.pitch // 12 - 1}",
                "onset_beats": n.onset / TICKS_PER_QUARTER,
                "duration_beats": n.duration / TICKS_PER_QUARTER,
                "onset_s": round(n.onset * seconds, 6),
                "duration_s": round(n.duration * seconds, 6),
                "bar": n.onset // length,
                "beat": round((n.onset % length) / TICKS_PER_QUARTER, 4),
            }
            for n in notes
        ]
        files.append((f"{name}.notes.json", "application/json", (json.dumps(document) + "\n").encode()))
    if "tokens" in params.formats:
        tokens = [{"token": t, "logprob": round(lp, 5)} for t, lp in zip(melody.tokens, melody.logprobs, strict=True)]
        files.append((f"{name}.tokens.json", "application/json", (json.dumps(tokens) + "\n").encode()))
    outputs = []
    for filename, media_type, data in files:
        path = workdir / filename
        path.write_bytes(data)
        outputs.append(Output(filename, media_type, path, {"notes": len(notes)}))
    return outputs


def _mido_key(key: Key) -> str | None:
    """mido's key-signature name (major/minor only; modes use their relative major's signature)."""
    from cadenza.music.keys import midi_key_signature

    return midi_key_signature(key)


def _previews(outputs: list[Output], params: MelodyRequest, ctx: RunContext, progress: Progress) -> list[Output]:
    from cadenza.music.synth import DEFAULT_SAMPLE_RATE, media_type, render_midi, resolve_soundfont, write_preview

    try:
        soundfont = resolve_soundfont(section(ctx.settings).soundfont_path)
    except (FileNotFoundError, ValueError) as exc:
        raise EngineInputError(f"cannot render the audio preview: {exc}") from exc
    previews = []
    for output in [o for o in outputs if o.name.endswith(".mid")]:
        progress(92.0, "rendering audio")
        audio = render_midi(Path(output.path).read_bytes(), soundfont, DEFAULT_SAMPLE_RATE)
        for fmt in (f for f in ("wav", "mp3") if f in params.formats):
            path = write_preview(Path(output.path).with_suffix(f".{fmt}"), audio, DEFAULT_SAMPLE_RATE, fmt)
            previews.append(Output(path.name, media_type(fmt), path, {"sample_rate": DEFAULT_SAMPLE_RATE}))
    return previews
