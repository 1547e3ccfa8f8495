"""The separation engine's entry points: probe_upload, validate_request, list_models, run."""

from __future__ import annotations

import math
from dataclasses import replace
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
)
from cadenza.engines.separation import demucs_backend, hpss
from cadenza.engines.separation.config import section
from cadenza.engines.separation.schema import SeparationRequest
from cadenza.music import audio

HPSS = "hpss"
HPSS_BLOCK_S = 30.0  # per block of stereo audio; more channels get shorter blocks
HPSS_MAX_RATE_HZ = 48_000
MIN_SAMPLE_RATE_HZ = 8000  # telephone band; lower rates are not music we can separate
DEMUCS_BLOCK_S = 30.0  # top-level block; Demucs' own segments (~7.8 s for htdemucs) run inside it
DEMUCS_FADE_S = 2.0  # crossfade between top-level Demucs blocks (context read: half of it)


def hpss_model_info() -> ModelInfo:
    return ModelInfo(
        name=HPSS,
        engine="separation",
        version="1",
        description="Harmonic-percussive separation by median filtering (librosa): drums, harmonic "
        "(+ residual with margin > 1). Built in, no weights.",
        licence="ISC (librosa)",
        data_source="none: signal processing (Fitzgerald 2010, Driedger et al. 2014)",
        size_bytes=0,
        weights_present=True,
    )


def max_upload_bytes(engine_settings: Any) -> int:
    """The size limit of the ``file`` input (``engines.separation.max_upload_bytes``)."""
    return int(engine_settings.max_upload_bytes)


def example_song(folder: Path) -> Path:
    """Write a 2 s stereo 44.1 kHz WAV (a kick-like pulse over a chord) into ``folder``; return its path."""
    import numpy as np

    rate = 44100
    t = np.arange(2 * rate) / rate
    chord = sum(0.15 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    pulse = 0.6 * np.sin(2 * np.pi * 60 * t) * np.exp(-30 * (t % 0.5))
    mono = (chord + pulse).astype(np.float32)
    import soundfile as sf

    path = Path(folder) / "example.wav"
    sf.write(str(path), np.stack([mono, mono]).T, rate, subtype="PCM_16")
    return path


def list_models(models_dir: Path) -> list[ModelInfo]:
    """``hpss`` first, then Demucs models present in ``<models_dir>/demucs``, then missing well-known ones."""
    return [hpss_model_info(), *demucs_backend.list_models(models_dir)]


def _models_dir(settings: Any) -> Path:
    from cadenza.settings import Settings

    return Path(getattr(settings, "models_dir", None) or Settings().models_dir)


def default_model(demucs_models: list[ModelInfo]) -> str:
    """The best model available among ``demucs_models`` (from :func:`demucs_backend.list_models`): a
    present well-known Demucs model (``htdemucs_ft`` > ``htdemucs`` > ``htdemucs_6s`` > ``mdx_extra``),
    else any present Demucs model (by name), else ``hpss``."""
    present = sorted(m.name for m in demucs_models if m.weights_present)
    for name in demucs_backend.KNOWN_MODELS:
        if name in present:
            return name
    return present[0] if present else HPSS


def model_sources(params: SeparationRequest, models_dir: Path) -> tuple[str, list[str]]:
    """Resolve the model name and its source names. Raises EngineInputError for an unknown model,
    missing weights, or stems the model does not have (messages list the valid values)."""
    demucs_models = [] if params.model == HPSS else demucs_backend.list_models(models_dir)
    name = params.model or default_model(demucs_models)
    if name == HPSS:
        srcs = hpss.sources(params.margin)
    else:
        infos = {m.name: m for m in demucs_models}
        info = infos.get(name)
        if info is None:
            valid = [HPSS, *(n for n, m in infos.items() if m.weights_present)]
            raise EngineInputError(f"unknown model {name!r}; available: {', '.join(valid)}")
        if not info.weights_present:
            raise EngineInputError(
                f"weights of model {name!r} are missing; add under {models_dir}: {'; '.join(info.missing_files)}"
            )
        try:
            srcs = demucs_backend.sources(models_dir, name)
        except Exception as exc:
            raise EngineInputError(f"cannot read Demucs model {name!r}: {exc}") from exc
    wanted = list(params.stems or []) + ([params.two_stems] if params.two_stems else [])
    unknown = [s for s in wanted if s not in srcs]
    if unknown:
        raise EngineInputError(f"unknown stem(s) {', '.join(unknown)} for model {name!r}; valid: {', '.join(srcs)}")
    if params.stems and len(set(params.stems)) != len(params.stems):
        raise EngineInputError("stems must not repeat")
    return name, srcs


def validate_request(params: SeparationRequest, settings: Any) -> list[str]:
    """Cheap checks before a job is created (model present, stems valid, device usable)."""
    name, _ = model_sources(params, _models_dir(settings))
    warnings = []
    device = params.device or getattr(settings, "device", "cpu")
    if device.startswith("cuda"):
        demucs_backend.resolve_device(device)
    demucs_only = [f for f in ("shifts", "overlap") if getattr(params, f) != SeparationRequest.model_fields[f].default]
    if name == HPSS and demucs_only:
        warnings.append(f"{' and '.join(demucs_only)} apply to Demucs models only; hpss ignores them")
    return warnings


def check_cost(info: audio.AudioInfo, settings: Any) -> None:
    """Reject, from the header alone, audio whose decoding would cost more than the settings allow:
    more than ``max_channels`` channels, a sample rate below 8 kHz or above ``max_sample_rate_hz``, a duration above
    ``max_duration_s`` or a decoded size (channels x frames x 4 bytes, float32) above ``max_decoded_mb``.
    Raises UploadRejected (422) naming the value found and the limit."""
    limits = section(settings)
    if info.channels > limits.max_channels:
        raise UploadRejected(
            422, "Too many channels", f"The audio has {info.channels} channels; the maximum is {limits.max_channels}."
        )
    if info.sample_rate < MIN_SAMPLE_RATE_HZ:
        raise UploadRejected(
            422,
            "Sample rate too low",
            f"The audio's sample rate is {info.sample_rate} Hz; the minimum is {MIN_SAMPLE_RATE_HZ} Hz.",
        )
    if info.sample_rate > limits.max_sample_rate_hz:
        raise UploadRejected(
            422,
            "Sample rate too high",
            f"The audio's sample rate is {info.sample_rate} Hz; the maximum is {limits.max_sample_rate_hz} Hz.",
        )
    if info.duration_s > limits.max_duration_s:
        raise UploadRejected(
            422,
            "Audio too long",
            f"The audio lasts {info.duration_s:.1f} s; the maximum is {limits.max_duration_s:.0f} s.",
        )
    decoded_mb = info.channels * info.frames * 4 / 2**20
    if decoded_mb > limits.max_decoded_mb:
        raise UploadRejected(
            422,
            "Audio too large once decoded",
            f"{info.channels} channels x {info.sample_rate} Hz x {info.duration_s:.1f} s decode to "
            f"{decoded_mb:.0f} MiB of float32 samples; the maximum is {limits.max_decoded_mb:.0f} MiB.",
        )


def probe_upload(path: Path, settings: Any) -> dict[str, Any]:
    """Check an upload: format from content, cost from the header (:func:`check_cost`), then one
    bounded-memory scan for levels, silence and non-finite samples. Returns the AudioInfo as a dict plus
    ``peak_dbfs`` and ``rms_dbfs``. Raises UploadRejected: 415 unsupported format (lists the supported
    ones), 422 empty / not audio / corrupt anywhere in the file (names what the content looks like) /
    NaN or Inf samples / too long / too many channels / sample rate too high / too large decoded / silent."""
    supported = ", ".join(audio.SUPPORTED_INPUT_FORMATS)
    try:
        info = audio.probe(path, check=lambda header: check_cost(header, settings))
        limits = section(settings)
        max_frames = int(
            min(limits.max_duration_s * info.sample_rate, limits.max_decoded_mb * 2**18 / max(1, info.channels))
        )
        scan = audio.level_stats if info.decoder == "sndfile" else audio.av_level_stats
        peak_db, rms_db, frames = scan(path, max_frames=max_frames)
        # ADTS and MP3 without a Xing header carry no exact length: the decoded count decides.
        check_cost(replace(info, frames=frames, duration_s=frames / max(1, info.sample_rate)), settings)
    except audio.AudioDecodeError as exc:
        reason = str(exc)[:1].upper() + str(exc)[1:].rstrip(".")
        if exc.found == "empty":
            raise UploadRejected(422, "Empty file", "The uploaded file is empty.") from exc
        if exc.unsupported:
            raise UploadRejected(415, "Unsupported audio format", f"{reason}. Supported formats: {supported}.") from exc
        if exc.found == "non-finite":
            raise UploadRejected(422, "Non-finite samples", f"{reason}.") from exc
        raise UploadRejected(422, "Not decodable audio", f"{reason}. Supported formats: {supported}.") from exc
    if info.frames == 0 or audio.is_silent(peak_db, rms_db):
        raise UploadRejected(
            422,
            "Silent audio",
            f"The audio is silent (peak {peak_db:.1f} dBFS, RMS {rms_db:.1f} dBFS; thresholds: peak < "
            f"{audio.SILENCE_PEAK_DBFS:.0f} dBFS or RMS < {audio.SILENCE_RMS_DBFS:.0f} dBFS).",
        )
    return info.as_dict() | {"peak_dbfs": round(peak_db, 2), "rms_dbfs": round(rms_db, 2)}


def load_model(name: str, ctx: RunContext) -> None:
    """Keep Demucs model ``name`` in ``ctx.cache`` (hpss has nothing to load)."""
    if name != HPSS and f"demucs:{name}" not in ctx.cache:
        ctx.cache[f"demucs:{name}"] = demucs_backend.load(ctx.models_dir, name)


def unload_model(name: str, ctx: RunContext) -> None:
    ctx.cache.pop(f"demucs:{name}", None)


def _prepare_input(
    path: Path, info: audio.AudioInfo, rate: int, workdir: Path, temps: list[Path], progress: Progress
) -> Path:
    """A libsndfile-readable file at ``rate`` Hz: the upload itself, or a float WAV in ``workdir``.
    Reports 0–5 % (``decoding``, ``resampling``) while it works."""
    from cadenza.engines.separation.pipeline import resample_file, scaled_progress

    src = path
    needs_resample = info.sample_rate != rate
    if info.decoder != "sndfile":
        src = workdir / ".partial-input.f32.wav"
        temps.append(src)
        info = audio.decode_to_wav(
            path,
            src,
            progress=scaled_progress(progress, 0.0, 2.5 if needs_resample else 5.0, "decoding"),
            expected_frames=info.frames,
        )
    if needs_resample:
        dest = workdir / ".partial-input-resampled.f32.wav"
        temps.append(dest)
        resample_file(
            src, dest, rate, progress=scaled_progress(progress, 2.5 if src != path else 0.0, 5.0, "resampling")
        )
        src = dest
    return src


def run(params: SeparationRequest, progress: Progress, ctx: RunContext) -> EngineResult:
    """Separate ``ctx.input_path`` into stems written as ``<stem>.<output_format>`` in ``ctx.workdir``.

    Result metadata per stem: ``duration_s``, ``sample_rate``, ``bit_depth`` (16, 24, "float" or
    "mp3"), ``peak_dbfs``; job metadata: model, sources, ``rescale_gain`` (1.0 if no rescale), input info.
    Raises EngineInputError for bad requests/inputs; JobCancelled from ``progress`` propagates and
    leaves no stem files behind.
    """
    from cadenza.engines.separation import pipeline

    if ctx.input_path is None:
        raise EngineInputError("separation needs an uploaded audio file")
    try:
        info = audio.probe(ctx.input_path)
    except audio.AudioDecodeError as exc:
        raise EngineInputError(str(exc)) from exc
    name, srcs = model_sources(params, ctx.models_dir)
    plan = pipeline.StemPlan.build(srcs, params.stems, params.two_stems)
    device = demucs_backend.resolve_device(params.device or ctx.device or "cpu")
    out_rate = params.sample_rate or info.sample_rate
    if params.output_format == "mp3" and out_rate not in audio.MP3_SAMPLE_RATES:
        raise EngineInputError(
            f"MP3 needs a sample rate in {audio.MP3_SAMPLE_RATES} Hz, not {out_rate}: set sample_rate"
        )
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    outputs: list[Path] = []
    warnings: list[str] = []
    try:
        progress(0.0, "decoding")
        if name == HPSS:
            # Deliberate bounds on memory: process at most 48 kHz (stems are resampled back to the
            # output rate) and shrink blocks as channels grow, so a block holds at most 2 x 30 s x 48 kHz.
            rate = min(info.sample_rate, HPSS_MAX_RATE_HZ)
            if rate != info.sample_rate:
                warnings.append(f"hpss processed the audio at {rate} Hz (the upload is {info.sample_rate} Hz)")
            src = _prepare_input(ctx.input_path, info, rate, ctx.workdir, temps, progress)
            hop = hpss.stft_size(rate)[1]
            seconds = (params.segment_s or HPSS_BLOCK_S) * 2 / max(2, info.channels)
            block = max(4, round(seconds * rate / hop)) * hop

            def block_fn(x, sub, margin=params.margin, rate=rate):
                return hpss.separate_block(x, margin, rate, progress=sub)

            context, fade = hpss.context_frames(rate), 0
            if device != "cpu":
                warnings.append("hpss runs on the CPU; the device setting was ignored")
        else:
            load_model(name, ctx)
            model = ctx.cache[f"demucs:{name}"]
            if info.channels > 2:
                raise EngineInputError(f"Demucs takes mono or stereo audio; the upload has {info.channels} channels")
            rate = int(model.samplerate)
            src = _prepare_input(ctx.input_path, info, rate, ctx.workdir, temps, progress)
            mean, std = pipeline.mono_stats(src)
            block_fn = demucs_backend.make_block_fn(
                model,
                mean=mean,
                std=std,
                shifts=params.shifts,
                overlap=params.overlap,
                segment_s=params.segment_s,
                device=device,
                seed=params.seed,
            )
            block, fade = int(DEMUCS_BLOCK_S * rate), int(DEMUCS_FADE_S * rate)
            context = fade // 2
        progress(5.0, "separating")
        tmp_paths, peaks = pipeline.separate_blocks(
            src,
            block_fn,
            plan,
            ctx.workdir,
            block_frames=block,
            context_frames=context,
            fade_frames=fade,
            progress=pipeline.scaled_progress(progress, 5.0, 90.0, f"separating ({name})"),
        )
        temps.extend(tmp_paths.values())
        outputs.extend(ctx.workdir / f"{n}.{params.output_format}" for n in plan.names)
        written, gain = pipeline.finalize_stems(
            tmp_paths,
            peaks,
            ctx.workdir,
            output_format=params.output_format,
            pcm_type=params.pcm_type,
            mp3_bitrate_kbps=params.mp3_bitrate,
            sample_rate=out_rate,
            clip=params.clip,
            progress=pipeline.scaled_progress(progress, 90.0, 100.0, "encoding"),
        )
    except BaseException:
        for p in outputs:
            p.unlink(missing_ok=True)
        raise
    finally:
        for p in temps:
            p.unlink(missing_ok=True)
    depth = audio.bit_depth(params.output_format, params.pcm_type)
    media_type = audio.OUTPUT_FORMATS[params.output_format][1]
    stems_meta = []
    result_outputs = []
    for w in written:
        meta = {
            "stem": w.name,
            "duration_s": round(w.frames / w.sample_rate, 6),
            "sample_rate": w.sample_rate,
            "bit_depth": depth,
            "peak_dbfs": round(audio.peak_dbfs(w.peak), 2) if w.peak > 0 else None,
        }
        stems_meta.append(meta)
        result_outputs.append(Output(name=w.path.name, media_type=media_type, path=w.path, metadata=meta))
    max_peak = max(peaks.values(), default=0.0)
    if params.clip == "clamp" and max_peak > 1.0:
        warnings.append(f"stems peaked at {audio.peak_dbfs(max_peak):+.2f} dBFS and were clamped to 0 dBFS")
    if gain != 1.0:
        warnings.append(f"stems were scaled by {gain:.4f} ({20 * math.log10(gain):.2f} dB) to avoid clipping")
    return EngineResult(
        outputs=result_outputs,
        metadata={
            "model": name,
            "sources": srcs,
            "stems": stems_meta,
            "rescale_gain": gain,
            "clip": params.clip,
            "device": device if name != HPSS else "cpu",
            "input": info.as_dict(),
        },
        warnings=warnings,
    )
