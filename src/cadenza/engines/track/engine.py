"""The track engine's runtime: prompt → plan → parts → arrangement.mid → rendered stems → mix → master.

Composition uses the drums engine (``drums.engine.compose``) and the melody engine's constrained sampler
(``melody.generate``) as libraries; models come from ``ctx.cache`` (``base.cached_model``) like their own jobs'.
Audio: each part rendered alone through the General MIDI SoundFont (symusic's synthesizer, 44.1 kHz stereo
float), levelled to a common loudness, then mixed and mastered by ``music.mixing``.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.engines.base import EngineInputError, EngineResult, ModelInfo, Output, Progress, RunContext, file_stem
from cadenza.engines.track.config import section
from cadenza.engines.track.schema import TrackRequest

SAMPLE_RATE = 44100
PART_RMS_DBFS = -20.0  # each rendered part is levelled to this RMS (over its sounding blocks) before the mix
FADE_OUT_S = 1.5
REVERB_DECIMATION = 2  # the room response is dark (a one-pole low-pass): convolved at 22.05 kHz
MODEL_NAME = "cadenza-arranger"


def list_models(models_dir: Path) -> list[ModelInfo]:
    """The arranger (rules plus the drums and melody engines' committed models), then each MusicGen folder
    under ``<models_dir>/musicgen/`` (or the default one, with the files it lacks)."""
    from cadenza.engines.track import musicgen

    names = sorted(p.name for p in (Path(models_dir) / "musicgen").glob("*") if p.is_dir()) or ["musicgen-small"]
    found = []
    for name in names:
        path = musicgen.folder(models_dir, name)
        missing = musicgen.missing_files(path)
        found.append(
            ModelInfo(
                name=f"musicgen:{name}",
                engine="track",
                version=name,
                description="MusicGen (Copet et al., NeurIPS 2023) from a local Hugging Face folder: text to audio, "
                "mastered like the arranger's tracks (request model 'musicgen:<name>'; needs cadenza[musicgen]).",
                licence="weights: CC BY-NC 4.0 for Meta's checkpoints (check yours); code: MIT/Apache-2.0",
                data_source="Meta's licensed music (see the checkpoint's model card)",
                size_bytes=sum(f.stat().st_size for f in path.glob("*") if f.is_file()) if path.is_dir() else None,
                weights_present=not missing,
                missing_files=missing,
                path=str(path),
            )
        )
    return [
        ModelInfo(
            name=MODEL_NAME,
            engine="track",
            version="1",
            description="Symbolic arranger: genre rules, the drums engine's groove transformer and the melody "
            "engine's transformer, rendered through a General MIDI SoundFont and mastered to -14 LUFS.",
            licence="Apache-2.0 (code); models: see the drums and melody model cards; SoundFont TimGM6mb (GPL-2, "
            "data only, replaceable)",
            data_source="Groove MIDI Dataset (drums, CC BY 4.0); O'Neill's and Ryan's collections (melody, public "
            "domain)",
            size_bytes=None,
            weights_present=True,
        ),
        *found,
    ]


def _musicgen_name(params: TrackRequest, settings: Any) -> str | None:
    """The MusicGen folder a request names (``musicgen`` → the setting's), None for the arranger."""
    if not params.model.startswith("musicgen"):
        return None
    return params.model.partition(":")[2] or section(settings).musicgen_name


def validate_request(params: TrackRequest, settings: Any) -> list[str]:
    """Resolve the plan once (unknown genre, unusable meter or key, over-long duration → 422) and report its
    warnings (e.g. words not understood)."""
    from cadenza.engines.track.plan import resolve

    name = _musicgen_name(params, settings)
    if name is not None:
        from cadenza.engines.track import musicgen

        musicgen.check(Path(getattr(settings, "models_dir", ".")), name)
    return resolve(params, settings, params.seed or 0).warnings


def interpret(params: TrackRequest, settings: Any) -> dict[str, Any]:
    """What the request will make, without making it: the interpretation, form and chords of its plan."""
    from cadenza.engines.track.plan import resolve

    seed = params.seed if params.seed is not None else 0
    plan = resolve(params, settings, seed)
    return _plan_document(plan, seed, params) | {"warnings": plan.warnings}


def _label(part: Any) -> str:
    import pretty_midi

    if part.program is None:
        return f"{part.name} (drums)"
    return f"{part.name} ({pretty_midi.program_to_instrument_name(part.program)})"


def _plan_document(plan: Any, seed: int, params: TrackRequest) -> dict[str, Any]:
    from cadenza.music.keys import midi_key_signature

    return {
        "prompt": params.prompt,
        "seed": seed,
        "interpretation": plan.interpretation,
        "genre": plan.genre.name,
        "tempo_bpm": plan.tempo_bpm,
        "key": plan.key.name,
        "midi_key_signature": midi_key_signature(plan.key),
        "time_signature": list(plan.meter),
        "bars": plan.bars,
        "bar_s": round(plan.bar_s, 6),
        "duration_s": round(plan.duration_s, 6),
        "loop": plan.loop,
        "sections": [
            {
                "name": s.name,
                "start_bar": s.start_bar,
                "bars": s.bars,
                "start_s": round(s.start_bar * plan.bar_s, 6),
                "energy": round(s.energy, 3),
            }
            for s in plan.sections
        ],
        "chords": [c.numeral for c in plan.chords],
        "parts": [
            {"name": p.name, "role": p.role, "program": p.program, "instrument": _label(p), "source": p.source}
            for p in plan.parts
        ],
        "drum_style": plan.drum_style,
    }


def _soundfont(settings: Any) -> Path:
    from cadenza.music.synth import resolve_soundfont

    try:
        return resolve_soundfont(section(settings).soundfont_path)
    except (FileNotFoundError, ValueError) as exc:
        raise EngineInputError(f"cannot render the track: {exc}") from exc


def _level(audio: np.ndarray) -> np.ndarray:
    """``audio`` scaled so its RMS over sounding 100 ms blocks is :data:`PART_RMS_DBFS` (silence stays silence)."""
    block = SAMPLE_RATE // 10
    usable = audio[:, : audio.shape[1] // block * block]
    if usable.shape[1] == 0:
        return audio
    power = (usable.astype(np.float64) ** 2).mean(axis=0).reshape(-1, block).mean(axis=1)
    sounding = power[power > power.max() * 1e-4] if power.max() > 0 else power[:0]
    if sounding.size == 0:
        return audio
    rms_db = 10 * math.log10(float(sounding.mean()))
    return (audio * np.float32(10 ** ((PART_RMS_DBFS - rms_db) / 20))).astype(np.float32)


def run(params: TrackRequest, progress: Progress, ctx: RunContext) -> EngineResult:
    """Compose, render, mix and master one track; write its files into ``ctx.workdir``.

    Raises EngineInputError (unknown genre, unusable SoundFont, missing drums/melody weights) and lets
    JobCancelled from ``progress`` propagate.
    """
    from cadenza.engines.drums.engine import load_model as load_drums
    from cadenza.engines.drums.styles import catalog_for_settings
    from cadenza.engines.melody.engine import DEFAULT_MODEL_ID
    from cadenza.engines.melody.engine import load_model as load_melody
    from cadenza.engines.track import arrangement, parts
    from cadenza.engines.track.plan import resolve
    from cadenza.music import mixing
    from cadenza.music.synth import render_midi

    started = time.perf_counter()
    seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
    progress(1.0, "plan")
    plan = resolve(params, ctx.settings, seed)
    if _musicgen_name(params, ctx.settings) is not None:
        return _run_musicgen(params, plan, seed, progress, ctx, started)
    warnings = list(plan.warnings)
    soundfont = _soundfont(ctx.settings)
    notes: dict[str, parts.PartNotes] = {}
    by_role = {p.role: p for p in plan.parts if p.name == p.role}
    # drums
    if "drums" in by_role:
        try:
            style = catalog_for_settings(ctx.settings).get(plan.drum_style)
        except KeyError as exc:
            raise EngineInputError(f"genre {plan.genre.name!r} names an unknown drum style: {exc.args[0]}") from exc
        model = load_drums(style.model_id, ctx)
        notes["drums"] = parts.drum_part(
            plan, by_role["drums"], seed, model, style, lambda p: progress(3.0 + 0.25 * p, "drums")
        )
    progress(28.0, "bass")
    if "bass" in by_role:
        notes["bass"] = parts.bass_part(plan, by_role["bass"], seed)
    progress(30.0, "harmony")
    if "harmony" in by_role:
        notes["harmony"] = parts.comp_part(plan, by_role["harmony"], seed)
    if "pad" in by_role:
        notes["pad"] = parts.comp_part(plan, by_role["pad"], seed, high=True)
    lyric_syllables = parts.syllables(params.lyrics) if params.lyrics else None
    if "lead" in by_role:
        net, _ = load_melody(DEFAULT_MODEL_ID, ctx)
        notes["lead"], lead_warnings = parts.lead_part(
            plan, by_role["lead"], seed, net, lyric_syllables, lambda p: progress(32.0 + 0.1 * p, "lead")
        )
        warnings += lead_warnings
    elif lyric_syllables:
        warnings.append("lyrics need a lead part; the prompt removed it, so they are not written")
    for extra in (p for p in plan.parts if p.name != p.role):
        if extra.role == "pad":
            notes[extra.name] = parts.comp_part(plan, extra, seed + 1, high=True)
        elif extra.role == "lead" and "lead" in notes:
            lead = notes["lead"]
            notes[extra.name] = parts.PartNotes(
                extra.name, "lead", extra.program, [(t, d, p - 12, max(20, v - 12)) for t, d, p, v in lead.notes]
            )
        elif extra.role == "bass" and "bass" in notes:
            notes[extra.name] = parts.PartNotes(extra.name, "bass", extra.program, list(notes["bass"].notes))
        else:
            notes[extra.name] = parts.comp_part(plan, extra, seed + 1, pattern_name="arpeggio")
    ordered = [notes[p.name] for p in plan.parts if p.name in notes]
    labels = {p.name: _label(p) for p in plan.parts}
    workdir = Path(ctx.workdir)
    title = f"Cadenza - {params.prompt[:80]}"
    midi = arrangement.arrangement_midi(plan, ordered, labels, title)
    (workdir / "arrangement.mid").write_bytes(midi)

    # render, level, EQ, pan, reverb
    frames = round(plan.duration_s * SAMPLE_RATE)
    stems: dict[str, np.ndarray] = {}
    settings_by_part = {p.name: p for p in plan.parts}
    for index, part in enumerate(ordered):
        progress(42.0 + 30.0 * index / len(ordered), f"render {part.name}")
        try:
            audio = render_midi(arrangement.part_midi(plan, part, ordered), soundfont, SAMPLE_RATE, normalize=False)
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            raise EngineInputError(f"cannot render the track: {exc}") from exc
        audio = mixing.fold_tail(audio, frames) if plan.loop else mixing.fit_length(audio, frames)
        stems[part.name] = _mix_part(_level(audio), plan, settings_by_part[part.name], mixing)
    if plan.fade_out:
        fade = min(FADE_OUT_S, plan.duration_s / 4)
        ramp = np.ones(frames, dtype=np.float32)
        n = int(fade * SAMPLE_RATE)
        ramp[frames - n :] = np.cos(np.linspace(0, np.pi / 2, n, dtype=np.float32)) ** 2
        stems = {name: stem * ramp for name, stem in stems.items()}
    progress(75.0, "master")
    try:
        mastered, mix, report = mixing.master(stems, SAMPLE_RATE, circular=plan.loop)
    except ValueError as exc:
        raise EngineInputError(f"cannot master the track: {exc}") from exc
    progress(85.0, "encode and measure")
    from concurrent.futures import ThreadPoolExecutor

    from cadenza.engines.track import measure
    from cadenza.music.keys import estimate_key

    # libsndfile (and LAME inside it) runs without the GIL: the files are written while the mix is measured
    with ThreadPoolExecutor(max_workers=2) as pool:
        # MP3 (the slowest: LAME) on its own thread, WAV/FLAC and the stems on another
        mp3 = pool.submit(_write_audio, workdir, {}, mix, [f for f in params.formats if f == "mp3"])
        others = [f for f in params.formats if f != "mp3"]
        written = pool.submit(_write_audio, workdir, mastered if params.stems else {}, mix, others)
        measured_tempo = measure.tempo_from_audio(mix, SAMPLE_RATE) if plan.duration_s >= 6 else None
        pitched = [(p, d) for part in ordered if part.program is not None for _, d, p, _ in part.notes]
        key_midi = estimate_key(pitched)[0] if pitched else None
        key_audio = measure.key_from_audio(mix, SAMPLE_RATE)
        outputs = written.result() + mp3.result()
    outputs.insert(
        0, Output("arrangement.mid", "audio/midi", workdir / "arrangement.mid", {"tracks": len(ordered) + 1})
    )
    progress(95.0, "report")
    stem_error = float(np.max(np.abs(mixing.sum_stems(mastered.values()) - mix)))
    document = _plan_document(plan, seed, params) | {
        "measured": {
            "duration_s": round(mix.shape[1] / SAMPLE_RATE, 6),
            "sample_rate": SAMPLE_RATE,
            "integrated_lufs": report.integrated_lufs,
            "true_peak_dbtp": report.true_peak_dbtp,
            "tempo_bpm_from_audio": round(measure.at_level(measured_tempo, plan.tempo_bpm), 2)
            if measured_tempo
            else None,
            "tempo_bpm_from_audio_raw": round(measured_tempo, 2) if measured_tempo else None,
            "key_from_midi": key_midi.name if key_midi else None,
            "key_from_audio": key_audio.name,
            "stems_sum_max_abs_error": stem_error,
            "master_gain_db": report.gain_db,
            "limiter_max_reduction_db": report.limiter_max_reduction_db,
            "compressor_max_reduction_db": report.compressor_max_reduction_db,
        },
        "soundfont": soundfont.name,
        "warnings": warnings,
    }
    (workdir / "track.json").write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", "utf-8")
    outputs.append(Output("track.json", "application/json", workdir / "track.json"))
    stem = file_stem(plan.genre.name, f"{plan.tempo_bpm:g}bpm", plan.key.name.replace("#", "sharp"), f"s{seed}")
    outputs = [_named(o, stem) for o in outputs]
    progress(100.0, "done")
    metadata = {
        "genre": plan.genre.name,
        "tempo_bpm": plan.tempo_bpm,
        "key": plan.key.name,
        "time_signature": list(plan.meter),
        "duration_s": document["measured"]["duration_s"],
        "bars": plan.bars,
        "loop": plan.loop,
        "seed": seed,
        "parts": [p.name for p in ordered],
        "integrated_lufs": report.integrated_lufs,
        "true_peak_dbtp": report.true_peak_dbtp,
        "interpretation": plan.interpretation,
        "compute_s": round(time.perf_counter() - started, 3),
        "warnings": warnings,
    }
    return EngineResult(outputs=outputs, metadata=metadata, warnings=warnings)


def _run_musicgen(params: TrackRequest, plan: Any, seed: int, progress: Progress, ctx: RunContext, started: float):
    """Text → audio with a local MusicGen, resampled to 44.1 kHz stereo, mastered like the arranger's mix.
    No stems or MIDI exist; track.json reports the tempo and key measured from the audio, beside the plan's."""
    from cadenza.engines.track import measure, musicgen
    from cadenza.music import mixing

    name = _musicgen_name(params, ctx.settings)
    settings = section(ctx.settings)
    model, processor = musicgen.load(Path(ctx.models_dir), name, ctx)
    progress(5.0, "musicgen")
    audio, rate = musicgen.generate(
        model,
        processor,
        params.prompt,
        plan.duration_s,
        seed,
        settings.musicgen_window_s,
        settings.musicgen_overlap_s,
        lambda p: progress(5.0 + 0.7 * p, "musicgen"),
    )
    from scipy.signal import resample_poly

    frames = round(plan.duration_s * SAMPLE_RATE)
    resampled = mixing.fit_length(resample_poly(audio, SAMPLE_RATE, rate)[None, :].astype(np.float32), frames)
    stereo = np.repeat(resampled, 2, axis=0)
    progress(78.0, "master")
    try:
        mastered, mix, report = mixing.master({"mix": stereo}, SAMPLE_RATE, circular=plan.loop)
    except ValueError as exc:
        raise EngineInputError(f"cannot master the MusicGen audio: {exc}") from exc
    workdir = Path(ctx.workdir)
    progress(85.0, "encode")
    outputs = _write_audio(workdir, {}, mix, params.formats)
    tempo = measure.tempo_from_audio(mix, SAMPLE_RATE) if plan.duration_s >= 6 else None
    key = measure.key_from_audio(mix, SAMPLE_RATE)
    warnings = [*plan.warnings, "MusicGen writes audio only: no stems and no arrangement.mid"]
    document = {
        "prompt": params.prompt,
        "seed": seed,
        "model": f"musicgen:{name}",
        "duration_s": round(plan.duration_s, 6),
        "requested": {"tempo_bpm": plan.tempo_bpm, "key": plan.key.name, "time_signature": list(plan.meter)},
        "interpretation": plan.interpretation,
        "measured": {
            "duration_s": round(mix.shape[1] / SAMPLE_RATE, 6),
            "sample_rate": SAMPLE_RATE,
            "model_sample_rate": rate,
            "integrated_lufs": report.integrated_lufs,
            "true_peak_dbtp": report.true_peak_dbtp,
            "tempo_bpm_from_audio": round(tempo, 2) if tempo else None,
            "key_from_audio": key.name,
        },
        "warnings": warnings,
    }
    (workdir / "track.json").write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", "utf-8")
    outputs.append(Output("track.json", "application/json", workdir / "track.json"))
    stem = file_stem("musicgen", name, f"{plan.duration_s:g}s", f"s{seed}")
    outputs = [_named(o, stem) for o in outputs]
    progress(100.0, "done")
    metadata = {
        "model": f"musicgen:{name}",
        "duration_s": document["measured"]["duration_s"],
        "seed": seed,
        "integrated_lufs": report.integrated_lufs,
        "true_peak_dbtp": report.true_peak_dbtp,
        "tempo_bpm_from_audio": document["measured"]["tempo_bpm_from_audio"],
        "key_from_audio": key.name,
        "compute_s": round(time.perf_counter() - started, 3),
        "warnings": warnings,
    }
    return EngineResult(outputs=outputs, metadata=metadata, warnings=warnings)


def _mix_part(audio: np.ndarray, plan: Any, spec: Any, mixing: Any) -> np.ndarray:
    """EQ, gain, pan and the reverb send of one part from the genre's mix settings (and the prompt's moods)."""
    from cadenza.engines.track.genres import PartMix

    settings = plan.genre.mix.get(spec.name) or plan.genre.mix.get(spec.role) or PartMix(gain_db=-10, reverb=0.3)
    lowpass = settings.lowpass_hz
    if plan.lowpass_hz is not None and spec.role != "bass":
        lowpass = min(lowpass or 20000.0, plan.lowpass_hz)
    audio = mixing.eq(audio, SAMPLE_RATE, settings.highpass_hz, lowpass, circular=plan.loop)
    left, right = mixing.pan_gains(settings.pan)
    gain = mixing.db_to_gain(settings.gain_db)
    audio = audio * np.array([[left * gain], [right * gain]], dtype=np.float32)
    send = float(np.clip(settings.reverb + plan.reverb_delta, 0.0, 1.0))
    if send > 0:
        decay = float(np.clip(plan.genre.reverb_s * (1 + plan.reverb_delta), 0.3, 8.0))
        ir = mixing.reverb_ir(decay, SAMPLE_RATE // REVERB_DECIMATION)
        wet = mixing.convolve(audio * np.float32(send), ir, circular=plan.loop, decimate=REVERB_DECIMATION)
        audio = audio + wet
    return audio.astype(np.float32)


def _write_audio(workdir: Path, stems: dict[str, np.ndarray], mix: np.ndarray, formats: list[str]) -> list[Output]:
    """The mix in each requested format (WAV 32-bit float, FLAC 24-bit, MP3 320 kbps) and one float WAV stem
    per part; WAV and FLAC carry no time-stamped PEAK chunk (same request → same bytes)."""
    from cadenza.music.audio import open_writer
    from cadenza.music.synth import media_type

    outputs = []
    facts = {"sample_rate": SAMPLE_RATE, "channels": 2, "frames": int(mix.shape[1])}
    for output_format in formats:
        path = workdir / f"track.{output_format}"
        pcm = {"wav": "FLOAT", "flac": "PCM_24", "mp3": "PCM_16"}[output_format]
        with open_writer(path, SAMPLE_RATE, 2, output_format, pcm) as handle:
            handle.write(np.ascontiguousarray(np.clip(mix, -1.0, 1.0).T if output_format != "wav" else mix.T))
        outputs.append(Output(path.name, media_type(output_format), path, facts | {"role": "mix"}))
    if stems:
        for name, stem in stems.items():
            path = workdir / f"stem-{name}.wav"
            with open_writer(path, SAMPLE_RATE, 2, "wav", "FLOAT") as handle:
                handle.write(np.ascontiguousarray(stem.T))
            outputs.append(Output(path.name, "audio/wav", path, facts | {"role": "stem", "part": name}))
    return outputs


def _named(output: Output, stem: str) -> Output:
    from dataclasses import replace

    base = output.name.rsplit(".", 1)[0]
    return replace(output, download_stem=stem if base == "track" else f"{stem}_{base}")
