"""A short synthesized demo song to try separation with (``cadenza demo-song``): no download, no licence.

Four bars at 96 BPM in A minor (Am–F–C–G): a kick/snare/hi-hat pattern made of decaying noise and sine
bursts, a sine bass on the roots and a triangle-wave chord pad, mixed to about −14 dBFS RMS with the
drums slightly left and the pad slightly right. Deterministic: the same ``seed`` gives the same samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 44100
TEMPO_BPM = 96.0
CHORDS_HZ = ((220.0, 261.63, 329.63), (174.61, 220.0, 261.63), (130.81, 164.81, 196.0), (196.0, 246.94, 293.66))
ROOTS_HZ = (55.0, 43.65, 65.41, 49.0)


def demo_song(bars: int = 4, seed: int = 0) -> np.ndarray:
    """``(2, samples)`` float32 stereo at :data:`SAMPLE_RATE`: ``bars`` bars of 4/4 at 96 BPM."""
    rng = np.random.default_rng(seed)
    beat = int(SAMPLE_RATE * 60.0 / TEMPO_BPM)
    total = bars * 4 * beat
    t = np.arange(total) / SAMPLE_RATE
    drums, bass, pad = (np.zeros(total, np.float32) for _ in range(3))

    def hit(start: int, sound: np.ndarray) -> None:
        end = min(total, start + len(sound))
        drums[start:end] += sound[: end - start]

    n = int(0.25 * SAMPLE_RATE)
    decay = np.exp(-np.arange(n) / (0.04 * SAMPLE_RATE))
    kick = 0.9 * np.sin(2 * np.pi * 55.0 * np.arange(n) / SAMPLE_RATE * (1 + 2 * decay)) * decay
    snare = 0.5 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.05 * SAMPLE_RATE))
    hat = 0.15 * rng.standard_normal(n // 4) * np.exp(-np.arange(n // 4) / (0.01 * SAMPLE_RATE))
    for b in range(bars * 4):
        start = b * beat
        hit(start, (kick if b % 2 == 0 else snare).astype(np.float32))
        hit(start + beat // 2, hat.astype(np.float32))
        hit(start, hat.astype(np.float32))
    for bar in range(bars):
        lo, hi = bar * 4 * beat, (bar + 1) * 4 * beat
        segment = t[lo:hi] - t[lo]
        envelope = np.minimum(1.0, segment / 0.05) * np.exp(-segment / 3.0)
        bass[lo:hi] = 0.35 * np.sin(2 * np.pi * ROOTS_HZ[bar % 4] * segment) * envelope
        tri = sum(2 / np.pi * np.arcsin(np.sin(2 * np.pi * f * segment)) for f in CHORDS_HZ[bar % 4])
        pad[lo:hi] = 0.08 * tri * envelope
    left = 0.6 * drums + bass + 0.8 * pad
    right = 0.4 * drums + bass + 1.2 * pad
    mix = np.stack([left, right]).astype(np.float32)
    return mix / np.float32(max(1.0, float(np.max(np.abs(mix))) / 0.9))


def write_demo_song(path: Path, bars: int = 4, seed: int = 0) -> Path:
    """Write :func:`demo_song` as a 16-bit WAV (or any format soundfile infers from the extension)."""
    sf.write(str(path), demo_song(bars, seed).T, SAMPLE_RATE, subtype="PCM_16")
    return Path(path)
