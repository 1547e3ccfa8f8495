"""What a rendered track measurably is: tempo from the audio's beats, key from the MIDI and from the audio.

* Tempo: librosa's dynamic-programming beat tracker (Ellis 2007, "Beat tracking by dynamic programming",
  JNMR 36(1)) on the mix, without a tempo prior; the tempo is 60 / the beat period fitted through the tracked
  beats, reported as measured and at the metrical level nearest the plan's (half/double time).
* Key from MIDI: Krumhansl–Kessler profiles over duration-weighted pitch classes (``music.keys.estimate_key``).
* Key from audio: the same profiles correlated with the mix's mean log-compressed chroma (librosa
  ``chroma_stft``, 8192-point frames at 22.05 kHz, concert tuning: the SoundFont is tuned to A440).
* MIREX key score (MIREX audio key detection task): 1 same key, 0.5 a fifth away (same mode), 0.3 relative
  major/minor, 0.2 parallel major/minor, else 0.
"""

from __future__ import annotations

import numpy as np

from cadenza.music.keys import KK_MAJOR, KK_MINOR, Key, preferred_name

ANALYSIS_RATE = 22050


def _mono(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    import librosa

    mono = np.asarray(audio, dtype=np.float32).mean(axis=0)
    return librosa.resample(mono, orig_sr=sample_rate, target_sr=ANALYSIS_RATE, res_type="polyphase")


def tempo_from_audio(audio: np.ndarray, sample_rate: int) -> float | None:
    """BPM from the tracked beats of ``(channels, samples)`` audio: the slope of a least-squares line through
    the beat times against their beat numbers (a skipped beat counts as the beats it spans); None with fewer
    than 4 beats. The tracker runs without a tempo prior, so it may lock to another metrical level (half or
    double time): see :func:`at_level`."""
    import librosa

    mono = _mono(audio, sample_rate)
    _, beats = librosa.beat.beat_track(y=mono, sr=ANALYSIS_RATE, hop_length=256, units="time")
    if len(beats) < 4:
        return None
    intervals = np.diff(beats)
    typical = float(np.median(intervals))
    index = np.concatenate([[0], np.cumsum(np.maximum(1, np.round(intervals / typical)))])
    period = float(np.polyfit(index, beats, 1)[0])
    return 60.0 / period


METRICAL_LEVELS = (0.5, 2.0 / 3.0, 1.0, 1.5, 2.0)


def at_level(measured_bpm: float, planned_bpm: float) -> float:
    """``measured_bpm`` moved to the metrical level nearest ``planned_bpm`` (× ½, ⅔, 1, 1½ or 2: a tracker that
    locked to half time, double time or the dotted level measured the same pulse)."""
    return min((measured_bpm * f for f in METRICAL_LEVELS), key=lambda bpm: abs(bpm - planned_bpm))


def key_from_audio(audio: np.ndarray, sample_rate: int) -> Key:
    """Krumhansl–Kessler key of the audio's mean chroma."""
    import librosa

    chroma = librosa.feature.chroma_stft(
        y=_mono(audio, sample_rate), sr=ANALYSIS_RATE, n_fft=8192, hop_length=2048, tuning=0.0
    )
    profile = np.log1p(10.0 * chroma).mean(axis=1)  # log-compressed, so loud bass notes do not dominate
    best = max(
        ((float(np.corrcoef(profile, np.roll(p, tonic))[0, 1]), tonic, mode)
         for tonic in range(12) for mode, p in (("major", KK_MAJOR), ("minor", KK_MINOR))),
    )  # fmt: skip
    _, tonic, mode = best
    return Key(preferred_name(tonic, mode), mode)


def mirex_key_score(estimated: Key, reference: Key) -> float:
    """MIREX weighted key score of ``estimated`` against ``reference`` (modes other than major/minor are compared
    as their nearer of the two: dorian as minor, mixolydian as major)."""

    def simple(key: Key) -> tuple[int, str]:
        return key.tonic_pc, "minor" if key.mode in ("minor", "dorian") else "major"

    (e_pc, e_mode), (r_pc, r_mode) = simple(estimated), simple(reference)
    if (e_pc, e_mode) == (r_pc, r_mode):
        return 1.0
    if e_mode == r_mode and (e_pc - r_pc) % 12 in (5, 7):
        return 0.5
    if e_mode != r_mode and (
        (r_mode == "major" and e_pc == (r_pc + 9) % 12) or (r_mode == "minor" and e_pc == (r_pc + 3) % 12)
    ):
        return 0.3
    if e_mode != r_mode and e_pc == r_pc:
        return 0.2
    return 0.0
