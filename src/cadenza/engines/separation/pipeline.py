"""Model-independent plumbing: block processing with context, stem plans, clipping, resampling, writing.

Memory stays bounded on long inputs: audio is read in blocks (plus context) from a libsndfile file,
each block's stems are written incrementally to float32 WAV files in the job folder, then a second
pass applies the clipping policy, resamples if asked and encodes the final files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from cadenza.engines.base import Progress
from cadenza.music import audio

BlockFn = Callable[[np.ndarray, Callable[[float], None]], np.ndarray]
RW_BLOCK = 1 << 16


@dataclass(frozen=True)
class StemPlan:
    """Output stems as weighted sums of model sources: ``weights[i, j]`` is source ``j``'s weight in
    stem ``i`` (``stems=[...]`` selects rows of the identity; ``two_stems='vocals'`` gives
    ``vocals`` and ``no_vocals`` = the sum of the other sources, as Demucs' own ``--two-stems``)."""

    names: list[str]
    weights: np.ndarray  # (n_stems, n_sources) float32

    @classmethod
    def build(cls, sources: list[str], stems: list[str] | None, two_stems: str | None) -> StemPlan:
        eye = np.eye(len(sources), dtype=np.float32)
        if two_stems is not None:
            j = sources.index(two_stems)
            return cls([two_stems, f"no_{two_stems}"], np.stack([eye[j], 1.0 - eye[j]]))
        chosen = stems or sources
        return cls(list(chosen), np.stack([eye[sources.index(s)] for s in chosen]))


def _plan_blocks(total: int, block: int) -> list[tuple[int, int]]:
    """Block boundaries; a short last block (< half a block) is merged into the previous one."""
    starts = list(range(0, total, block))
    if len(starts) > 1 and total - starts[-1] < block // 2:
        starts.pop()
    ends = starts[1:] + [total]
    return list(zip(starts, ends, strict=True))


def separate_blocks(
    src: Path,
    block_fn: BlockFn,
    plan: StemPlan,
    tmp_dir: Path,
    *,
    block_frames: int,
    context_frames: int,
    fade_frames: int,
    progress: Callable[[float], None],
) -> tuple[dict[str, Path], dict[str, float]]:
    """Run ``block_fn`` over ``src`` block by block and write each planned stem to a float32 WAV.

    Each block ``[s, e)`` is read with ``context_frames`` extra on each side (discarded afterwards).
    With ``fade_frames`` > 0 neighbouring blocks overlap by that many frames around each boundary
    and are crossfaded linearly (weights sum to one, so stems that sum to the mix still do).
    ``block_fn(x, sub_progress)`` maps ``(channels, n)`` to ``(n_sources, channels, n)``.
    ``progress(percent)`` (0–100) is called after each block (and, through ``block_fn``'s
    ``sub_progress(percent)`` of that block, within it).
    Returns the stem files and their sample peaks (linear).
    """
    info = sf.info(str(src))
    total, rate, channels = int(info.frames), int(info.samplerate), int(info.channels)
    half = fade_frames // 2
    if context_frames < half or block_frames < 4 * half:
        raise ValueError("context must cover half the fade, and blocks be at least twice the fade")
    paths = {name: tmp_dir / f".partial-{name}.f32.wav" for name in plan.names}
    peaks = dict.fromkeys(plan.names, 0.0)
    writers = {n: audio.float_wav_writer(p, rate, channels) for n, p in paths.items()}
    blocks = _plan_blocks(total, block_frames)
    ramp = ((np.arange(2 * half, dtype=np.float32) + 0.5) / max(1, 2 * half))[None, None, :]
    pending: np.ndarray | None = None
    try:
        for k, (s, e) in enumerate(blocks):
            a, b = max(0, s - context_frames), min(total, e + context_frames)
            x = audio.read_audio(src, a, b - a)

            def sub(percent: float, s: int = s, e: int = e) -> None:
                progress(100.0 * (s + percent / 100.0 * (e - s)) / total)

            y = block_fn(x, sub)
            y = np.einsum("ij,jcn->icn", plan.weights, y, optimize=True).astype(np.float32)
            h_in = half if k > 0 else 0
            h_out = half if e < total else 0
            pieces = []
            if h_in:
                head = y[..., s - h_in - a : s + h_in - a]
                pieces.append(pending * (1.0 - ramp) + head * ramp)
            pieces.append(y[..., s + h_in - a : e - h_out - a])
            pending = y[..., e - h_out - a : e + h_out - a].copy() if h_out else None
            chunk = np.concatenate(pieces, axis=-1)
            for i, name in enumerate(plan.names):
                writers[name].write(chunk[i].T)
                if chunk.shape[-1]:
                    peaks[name] = max(peaks[name], float(np.max(np.abs(chunk[i]))))
            progress(100.0 * e / total)
    except BaseException:
        for w in writers.values():
            w.close()
        for p in paths.values():
            p.unlink(missing_ok=True)
        raise
    for w in writers.values():
        w.close()
    return paths, peaks


def _resampled_blocks(src: Path, rate: int, gain: float = 1.0) -> Iterator[np.ndarray]:
    """``(samples, channels)`` float32 blocks of a libsndfile-readable file, scaled by ``gain`` and
    resampled to ``rate`` Hz while streaming (soxr, HQ; no resampling when the rates match)."""
    import soxr

    info = sf.info(str(src))
    stream = (
        soxr.ResampleStream(info.samplerate, rate, info.channels, dtype="float32", quality="HQ")
        if rate != info.samplerate
        else None
    )
    for block in sf.blocks(str(src), blocksize=RW_BLOCK, dtype="float32", always_2d=True):
        block = block * np.float32(gain) if gain != 1.0 else block
        yield stream.resample_chunk(block) if stream else block
    if stream:
        yield stream.resample_chunk(np.zeros((0, info.channels), dtype=np.float32), last=True)


def resample_file(src: Path, dest: Path, rate: int, progress: Callable[[float], None] | None = None) -> None:
    """Resample a libsndfile-readable file to ``rate`` Hz into a float32 WAV, streaming (soxr, HQ).
    ``progress(percent)`` (0–100) is called after each block."""
    info = sf.info(str(src))
    expected = max(1, round(info.frames * rate / info.samplerate))
    written = 0
    with audio.float_wav_writer(dest, rate, info.channels) as out:
        for block in _resampled_blocks(src, rate):
            out.write(block)
            written += block.shape[0]
            if progress is not None:
                progress(min(100.0, 100.0 * written / expected))


@dataclass
class WrittenStem:
    name: str
    path: Path
    frames: int
    sample_rate: int
    peak: float


def finalize_stems(
    tmp_paths: dict[str, Path],
    peaks: dict[str, float],
    out_dir: Path,
    *,
    output_format: str,
    pcm_type: str,
    mp3_bitrate_kbps: int,
    sample_rate: int,
    clip: str,
    progress: Callable[[float], None],
) -> tuple[list[WrittenStem], float]:
    """Encode the float stems as ``<name>.<format>`` in ``out_dir``.

    Clipping: ``rescale`` multiplies every stem by one gain ``1 / max peak`` when any peak exceeds
    1.0 (returned, 1.0 otherwise); ``clamp`` clips samples to [-1, 1]. Samples are clipped to
    [-1, 1] after resampling in both cases (resampling can overshoot slightly).
    """
    top = max(peaks.values(), default=0.0)
    gain = 1.0 / top if clip == "rescale" and top > 1.0 else 1.0
    written: list[WrittenStem] = []
    for i, (name, tmp) in enumerate(tmp_paths.items()):
        dest = out_dir / f"{name}.{output_format}"
        channels = sf.info(str(tmp)).channels
        peak, frames = 0.0, 0
        with audio.open_writer(dest, sample_rate, channels, output_format, pcm_type, mp3_bitrate_kbps) as out:
            for block in _resampled_blocks(tmp, sample_rate, gain):
                block = np.clip(block, -1.0, 1.0)
                if block.size:
                    peak = max(peak, float(np.max(np.abs(block))))
                frames += block.shape[0]
                out.write(block)
        written.append(WrittenStem(name, dest, frames, sample_rate, peak))
        progress(100.0 * (i + 1) / len(tmp_paths))
    return written, gain


def scaled_progress(progress: Progress, lo: float, hi: float, stage: str) -> Callable[[float], None]:
    """Map a sub-task's percent in [0, 100] onto ``progress(percent, stage)`` between ``lo`` and ``hi``."""

    def report(percent: float) -> None:
        progress(lo + (hi - lo) * min(1.0, max(0.0, percent / 100.0)), stage)

    return report


def mono_stats(src: Path) -> tuple[float, float]:
    """Mean and standard deviation of the channel-averaged signal (Demucs' input normalisation)."""
    n, s1, s2 = 0, 0.0, 0.0
    for block in audio.iter_blocks(src, RW_BLOCK):
        mono = block.mean(axis=0, dtype=np.float64)
        n += mono.size
        s1 += float(mono.sum())
        s2 += float(np.dot(mono, mono))
    mean = s1 / max(1, n)
    return mean, math.sqrt(max(0.0, s2 / max(1, n) - mean * mean))
