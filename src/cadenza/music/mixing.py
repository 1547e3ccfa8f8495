"""Mixing and mastering of stems: EQ, pan, a reverb send, glue compression, a true-peak limiter and loudness
normalisation, all on ``(channels, samples)`` float arrays at one sample rate.

Mastering computes one time-varying gain from the *mix* and applies it to every stem, so the mastered stems
still sum to the mastered mix (the operations are linear in the stems once the gain is fixed).

Measurements follow ITU-R BS.1770-4: integrated loudness (LUFS, K-weighted, gated) with pyloudnorm, true
peak (dBTP) as the peak of the signal oversampled 4× (Annex 2; here with SciPy's 81-tap Kaiser-windowed
interpolation filter through ``scipy.signal.upfirdn``). The reverb is a convolution with exponentially
decaying, seeded noise (a standard synthetic room response: decay to −60 dB in ``decay_s``), so it is
deterministic.

``circular=True`` treats a signal as a loop: filters, the reverb tail and gain smoothing wrap around its end
into its start, so the loop has no seam.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

TRUE_PEAK_OVERSAMPLING = 4
# The interpolation filter of scipy.signal.resample_poly for 4× (81 taps, Kaiser β 5): longer than BS.1770's
# 48-tap example, so it under-reads inter-sample peaks less.
_TP_FILTER = (
    signal.firwin(2 * 10 * TRUE_PEAK_OVERSAMPLING + 1, 1.0 / TRUE_PEAK_OVERSAMPLING, window=("kaiser", 5.0))
    * TRUE_PEAK_OVERSAMPLING
).astype(np.float32)


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power pan law (−3 dB at the centre, normalised so the centre is unity): ``pan`` −1 (left) … 1."""
    angle = (pan + 1.0) * math.pi / 4.0
    return math.cos(angle) * math.sqrt(2.0), math.sin(angle) * math.sqrt(2.0)


def _circular_pad(audio: np.ndarray, pad: int, circular: bool) -> np.ndarray:
    if not circular or pad <= 0:
        return audio
    pad = min(pad, audio.shape[-1])
    return np.concatenate([audio[..., -pad:], audio], axis=-1)


def eq(
    audio: np.ndarray, sample_rate: int, highpass_hz: float | None, lowpass_hz: float | None, circular: bool = False
) -> np.ndarray:
    """2nd-order Butterworth high-pass and/or low-pass (12 dB/octave) of ``(channels, samples)`` audio."""
    sections = []
    nyquist = sample_rate / 2
    if highpass_hz:
        sections.append(signal.butter(2, min(highpass_hz, nyquist * 0.95), "highpass", fs=sample_rate, output="sos"))
    if lowpass_hz and lowpass_hz < nyquist * 0.95:
        sections.append(signal.butter(2, lowpass_hz, "lowpass", fs=sample_rate, output="sos"))
    if not sections:
        return audio
    pad = sample_rate if circular else 0
    padded = _circular_pad(audio, pad, circular)
    out = signal.sosfilt(np.concatenate(sections), padded, axis=-1)
    return out[..., padded.shape[-1] - audio.shape[-1] :].astype(audio.dtype)


def reverb_ir(decay_s: float, sample_rate: int, seed: int = 0, predelay_s: float = 0.02) -> np.ndarray:
    """A stereo room response ``(2, samples)`` float32: decorrelated noise decaying 60 dB over ``decay_s`` (RT60),
    darker as it decays (one-pole low-pass), after ``predelay_s``; unit energy per channel."""
    rng = np.random.default_rng(seed)
    n = int(decay_s * sample_rate)
    t = np.arange(n) / sample_rate
    noise = rng.standard_normal((2, n)) * np.exp(-6.907755 * t / decay_s)  # ln(1000) = 6.9: −60 dB at decay_s
    noise = signal.lfilter([0.35], [1, -0.65], noise, axis=-1)
    noise /= np.sqrt((noise**2).sum(axis=-1, keepdims=True))
    return np.concatenate([np.zeros((2, int(predelay_s * sample_rate))), noise], axis=-1).astype(np.float32)


def convolve(audio: np.ndarray, ir: np.ndarray, circular: bool = False, decimate: int = 1) -> np.ndarray:
    """``(2, n)`` audio convolved per channel with a ``(2, m)`` response; the tail past ``n`` is dropped, or
    with ``circular`` added back onto the start (a loop's reverb rings into its beginning). ``decimate`` > 1
    convolves at 1/``decimate`` of the rate (``ir`` must be at that rate): for a dark room response, whose
    content stays far below the reduced Nyquist frequency, at a fraction of the cost."""
    n = audio.shape[-1]
    if decimate > 1:
        low = signal.resample_poly(audio, 1, decimate, axis=-1).astype(np.float32)
        wet_low = convolve(low, ir, circular)
        wet = signal.resample_poly(wet_low, decimate, 1, axis=-1).astype(np.float32)
        return fit_length(wet, n)
    wet = signal.oaconvolve(audio, ir, axes=-1)
    out = wet[..., :n].copy()
    if circular:
        tail = wet[..., n:]
        for start in range(0, tail.shape[-1], n):
            chunk = tail[..., start : start + n]
            out[..., : chunk.shape[-1]] += chunk
    return out.astype(np.float32)


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """``(channels, samples)`` audio cut or zero-padded to ``n`` samples."""
    if audio.shape[-1] >= n:
        return np.ascontiguousarray(audio[..., :n])
    return np.pad(audio, ((0, 0), (0, n - audio.shape[-1])))


def fold_tail(audio: np.ndarray, n: int) -> np.ndarray:
    """``audio`` longer than ``n`` samples as a loop of ``n``: everything after ``n`` is added onto the start."""
    out = np.zeros((audio.shape[0], n), dtype=np.float32)
    for start in range(0, audio.shape[-1], n):
        chunk = audio[..., start : start + n]
        out[..., : chunk.shape[-1]] += chunk
    return out


TRUE_PEAK_BLOCK = 1 << 18  # samples per block of the oversampled scan: bounded memory, cache-friendly


def true_peak_envelope(audio: np.ndarray) -> np.ndarray:
    """Per-sample true peak (linear): the largest magnitude of the 4×-oversampled signal over all channels in
    each sample period, computed in blocks of :data:`TRUE_PEAK_BLOCK` samples (each with the filter's reach
    of context on both sides). Shape ``(samples,)`` float32."""
    data = np.ascontiguousarray(audio, dtype=np.float32)
    n = data.shape[-1]
    up = TRUE_PEAK_OVERSAMPLING
    reach = (len(_TP_FILTER) - 1) // (2 * up) + 1  # input samples the filter spans on each side
    delay = (len(_TP_FILTER) - 1) // 2
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, TRUE_PEAK_BLOCK):
        stop = min(n, start + TRUE_PEAK_BLOCK)
        lo, hi = max(0, start - reach), min(n, stop + reach)
        block = signal.upfirdn(_TP_FILTER, data[:, lo:hi], up=up, axis=-1)
        first = (start - lo) * up + delay
        block = block[:, first : first + (stop - start) * up]
        if block.shape[-1] < (stop - start) * up:
            block = np.pad(block, ((0, 0), (0, (stop - start) * up - block.shape[-1])))
        np.abs(block, out=block)
        loudest = np.maximum.reduce(block, axis=0)  # over channels first: contiguous rows, no big temporaries
        out[start:stop] = loudest.reshape(stop - start, up).max(axis=1)
    return out


def true_peak_dbtp(audio: np.ndarray) -> float:
    """True peak of ``(channels, samples)`` audio in dBTP (BS.1770-4 Annex 2, 4× oversampling)."""
    peak = float(true_peak_envelope(audio).max()) if audio.size else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS) of ``(channels, samples)`` audio (BS.1770-4 through pyloudnorm); −inf if
    silent or shorter than one 400 ms block."""
    import pyloudnorm

    if audio.shape[-1] < int(0.4 * sample_rate):
        return -math.inf
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(np.asarray(audio, dtype=np.float64).T))


def glue_gain(
    mix: np.ndarray,
    sample_rate: int,
    ratio: float = 2.0,
    above_rms_db: float = 4.0,
    window_s: float = 0.05,
    circular: bool = False,
) -> np.ndarray:
    """Gain ``(samples,)`` of a gentle bus compressor: the mix's RMS over ``window_s`` above a threshold
    ``above_rms_db`` over its overall RMS is reduced at ``ratio``:1, the gain smoothed over 80 ms."""
    power = (np.asarray(mix, dtype=np.float32) ** 2).mean(axis=0)
    window = max(1, int(window_s * sample_rate))
    pad = window * 4 if circular else 0  # a loop's level at its start continues its end
    padded = _circular_pad(power, pad, circular)
    rms_db = 10 * np.log10(ndimage.uniform_filter1d(padded, window, mode="nearest") + 1e-12)
    overall = 10 * math.log10(float(power.mean()) + 1e-12)
    over = np.maximum(0.0, rms_db - (overall + above_rms_db))
    gain_db = -over * (1 - 1 / ratio)
    gain_db = ndimage.uniform_filter1d(gain_db, max(1, int(0.08 * sample_rate)), mode="nearest")
    return np.power(10.0, gain_db[pad:] / 20.0).astype(np.float32)


def limiter_gain(
    envelope: np.ndarray, ceiling_dbtp: float, sample_rate: int, lookahead_s: float = 0.005, circular: bool = False
) -> np.ndarray:
    """Gain ``(samples,)`` that keeps a signal whose true-peak envelope is ``envelope``
    (:func:`true_peak_envelope`) under ``ceiling_dbtp``: the gain each sample needs, its minimum over
    ±``lookahead_s`` (so the gain is already down when a peak arrives), averaged over ``lookahead_s`` (smooth,
    and never above what any sample in reach needs)."""
    ceiling = db_to_gain(ceiling_dbtp)
    need = np.minimum(1.0, ceiling / np.maximum(envelope, 1e-9)).astype(np.float32)
    reach = max(1, int(lookahead_s * sample_rate))
    mode = "wrap" if circular else "nearest"
    held = ndimage.minimum_filter1d(need, 2 * reach + 1, mode=mode)
    smooth = ndimage.uniform_filter1d(held, reach, mode=mode)
    return np.minimum(smooth, held)


def sum_stems(stems: Iterable[np.ndarray]) -> np.ndarray:
    """The sum of equally shaped stems, accumulated in float64 and returned as float32."""
    total: np.ndarray | None = None
    for stem in stems:
        if total is None:
            total = stem.astype(np.float64)
        else:
            total += stem
    if total is None:
        raise ValueError("no stems")
    return total.astype(np.float32)


@dataclass
class MasterReport:
    integrated_lufs: float
    true_peak_dbtp: float
    gain_db: float
    limiter_max_reduction_db: float
    compressor_max_reduction_db: float


def master(
    stems: dict[str, np.ndarray],
    sample_rate: int,
    target_lufs: float = -14.0,
    ceiling_dbtp: float = -1.0,
    circular: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray, MasterReport]:
    """Master the sum of ``stems`` (each ``(2, samples)`` float32): glue compression, loudness normalisation to
    ``target_lufs`` and a true-peak limiter under ``ceiling_dbtp``, iterated until the limited mix is within
    0.1 LU of the target. Returns the mastered stems (the same gain applied to each), their sum (the master,
    float32) and what was measured; float32 stems are scaled in place (the mastered stems are the same arrays).
    Raises ValueError for silent stems."""
    mix = sum_stems(stems.values())
    if not np.any(mix):
        raise ValueError("the mix is silent")
    comp = glue_gain(mix, sample_rate, circular=circular)
    squeezed = mix * comp
    loudness = integrated_lufs(squeezed, sample_rate)
    if not math.isfinite(loudness):
        raise ValueError("the mix is too short or too quiet to measure")
    gain_db = target_lufs - loudness
    limiter = np.ones(mix.shape[-1], dtype=np.float32)
    margin = 0.3  # dB under the ceiling for the limiter, so interpolation between gain steps stays under it
    envelope = true_peak_envelope(squeezed)  # a constant gain scales it: computed once
    for _ in range(6):
        gain = np.float32(db_to_gain(gain_db))
        limiter = limiter_gain(envelope * gain, ceiling_dbtp - margin, sample_rate, circular=circular)
        measured = integrated_lufs(squeezed * (limiter * gain), sample_rate)
        if abs(measured - target_lufs) <= 0.1:
            break
        gain_db += target_lufs - measured
    total = (comp * np.float32(db_to_gain(gain_db)) * limiter).astype(np.float32)
    mastered = {}
    for name, stem in stems.items():  # in place: a second copy of every stem would double the peak memory
        stem = np.asarray(stem, dtype=np.float32)
        stem *= total
        mastered[name] = stem
    out = sum_stems(mastered.values())
    peak = true_peak_dbtp(out)
    if peak > ceiling_dbtp:  # a last static trim (rare: gain steps between samples)
        trim = np.float32(db_to_gain(ceiling_dbtp - peak - 0.05))
        mastered = {name: stem * trim for name, stem in mastered.items()}
        out = sum_stems(mastered.values())
        peak = true_peak_dbtp(out)
    report = MasterReport(
        integrated_lufs=round(integrated_lufs(out, sample_rate), 3),
        true_peak_dbtp=round(peak, 3),
        gain_db=round(gain_db, 3),
        limiter_max_reduction_db=round(-20 * math.log10(max(float(limiter.min()), 1e-9)), 3),
        compressor_max_reduction_db=round(-20 * math.log10(max(float(comp.min()), 1e-9)), 3),
    )
    return mastered, out, report
