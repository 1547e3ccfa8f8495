"""Groove feel: the Groove MIDI Dataset's measured micro-timing and dynamics, and feel statistics of a groove.

* ``gmd_feel.json`` (next to this module) holds, per GMD genre and instrument, the mean micro-timing, its
  spread within a groove and the velocity profile, measured on the GMD train split by ``lab/feel.py``
  (command and units in the file). :func:`conditioning_feel` mixes it for a style's genre weights.
* :func:`groove_stats` measures the same figures on any groove (generated, a user's reference, a GMD
  window) and :func:`feel_distance` compares two of them; the result of a reference-guided job and the
  evaluation report both.

Data: Groove MIDI Dataset v1.0.0 (Gillick, Roberts, Engel, Eck, Bamman, ICML 2019), CC BY 4.0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.music.drum_map import DRUM_CLASSES

GMD_FEEL_PATH = Path(__file__).with_name("gmd_feel.json")
POSITION_NAMES: tuple[str, ...] = ("beat", "e", "and", "a")  # 16th positions in a beat, as counted "1 e & a"


@dataclass(frozen=True)
class InstrumentFeel:
    """One instrument's measured feel: mean offset and its within-groove spread (ms and 16th steps, relative
    to the straight grid, + = late) and the mean velocity (MIDI velocity / 127)."""

    offset_mean_ms: float
    offset_std_ms: float
    offset_mean_steps: float
    offset_std_steps: float
    velocity_mean: float


@lru_cache(maxsize=4)
def gmd_feel(path: Path = GMD_FEEL_PATH) -> dict[str, Any]:
    """The parsed ``gmd_feel.json`` (cached). Raises FileNotFoundError / ValueError for a missing or bad file."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("genres"), dict):
        raise ValueError(f"{path} is not a GMD feel file (no 'genres')")
    return document


def conditioning_feel(conditioning: Mapping[str, float], path: Path = GMD_FEEL_PATH) -> dict[str, InstrumentFeel]:
    """Per instrument, the weighted mixture of the genres' feel (``{"hiphop": 0.7, "soul": 0.3}``).

    Means mix linearly; spreads mix as a mixture distribution's within-component spread (root of the weighted
    mean variance). Genres or instruments without data are left out of the mixture.
    """
    genres = gmd_feel(path)["genres"]
    result = {}
    for name in DRUM_CLASSES:
        parts = [
            (weight, genres[genre]["instruments"][name])
            for genre, weight in conditioning.items()
            if genre in genres and name in genres[genre]["instruments"]
        ]
        total = sum(weight for weight, _ in parts)
        if total <= 0:
            continue

        def mix(key: str, parts: list = parts, total: float = total) -> float:
            return sum(weight * entry[key] for weight, entry in parts) / total

        def spread(key: str, parts: list = parts, total: float = total) -> float:
            return math.sqrt(sum(weight * entry[key] ** 2 for weight, entry in parts) / total)

        result[name] = InstrumentFeel(
            offset_mean_ms=mix("offset_mean_ms"),
            offset_std_ms=spread("offset_std_ms"),
            offset_mean_steps=mix("offset_mean_steps"),
            offset_std_steps=spread("offset_std_steps"),
            velocity_mean=mix("velocity_mean"),
        )
    return result


@dataclass(frozen=True)
class FeelHit:
    """A hit as feel statistics see it: ``offset_steps`` from its straight 16th step (+ = late), velocity 1–127."""

    bar: int
    step: int
    instrument: int
    offset_steps: float
    velocity: int


def groove_stats(hits: Iterable[FeelHit], *, n_bars: int, steps_per_bar: int, tempo_bpm: float) -> dict[str, Any]:
    """Feel statistics of a groove.

    Returns ``offset_std_steps`` (spread of all hits' offsets, 16th steps), ``velocity_mean`` (0–1),
    ``hits_per_bar``, ``swing_percent`` (MPC swing equivalent of the mean delay of odd 16ths against even
    ones: ``50 + 50 × delay``), and per instrument ``hits_per_bar``, ``offset_mean_ms``,
    ``offset_std_ms``, ``velocity_mean`` and ``profile`` (share of bars with a hit on each step of the bar).
    """
    hits = list(hits)
    step_ms = 60_000.0 / tempo_bpm / 4.0
    n_bars = max(1, n_bars)
    instruments: dict[str, Any] = {}
    for cls, name in enumerate(DRUM_CLASSES):
        own = [h for h in hits if h.instrument == cls]
        if not own:
            continue
        offsets = np.asarray([h.offset_steps for h in own]) * step_ms
        profile = np.zeros(steps_per_bar)
        for h in own:
            profile[h.step % steps_per_bar] += 1.0
        instruments[name] = {
            "hits_per_bar": round(len(own) / n_bars, 3),
            "offset_mean_ms": round(float(offsets.mean()), 2),
            "offset_std_ms": round(float(offsets.std()), 2),
            "velocity_mean": round(float(np.mean([h.velocity for h in own])) / 127.0, 4),
            "profile": np.round(np.minimum(profile / n_bars, 1.0), 3).tolist(),
        }
    offsets = np.asarray([h.offset_steps for h in hits]) if hits else np.zeros(1)
    odd = [h.offset_steps for h in hits if h.step % 2]
    even = [h.offset_steps for h in hits if not h.step % 2]
    delay = float(np.mean(odd) - np.mean(even)) if odd and even else 0.0
    return {
        "hits_per_bar": round(len(hits) / n_bars, 3),
        "offset_std_steps": round(float(offsets.std()), 4),
        "velocity_mean": round(float(np.mean([h.velocity for h in hits])) / 127.0, 4) if hits else 0.0,
        "swing_percent": round(50.0 + 50.0 * delay, 2),
        "instruments": instruments,
    }


def feel_distance(reference: Mapping[str, Any], groove: Mapping[str, Any]) -> dict[str, float]:
    """How far ``groove``'s feel is from ``reference``'s (both from :func:`groove_stats`); 0 = the same.

    ``timing_ms``: mean |difference of per-instrument mean offsets| over the reference's instruments,
    weighted by their hits; ``velocity``: the same for mean velocities (0–1); ``density``: summed |difference
    of per-instrument hits per bar| relative to the reference's hits per bar (an instrument missing on one
    side counts fully); ``pattern``: 1 − cosine similarity of the per-step onset profiles of all
    instruments; ``swing_percent``: |difference of swing|.
    """
    ref, gen = reference["instruments"], groove["instruments"]
    shared = [name for name in ref if name in gen]
    weights = np.asarray([ref[name]["hits_per_bar"] for name in shared]) if shared else np.zeros(0)

    def weighted(key: str) -> float:
        if not shared:
            return float("nan")
        diffs = np.asarray([abs(ref[n][key] - gen[n][key]) for n in shared])
        return float((diffs * weights).sum() / max(weights.sum(), 1e-9))

    names = sorted(set(ref) | set(gen), key=DRUM_CLASSES.index)
    density = sum(abs(ref.get(n, {}).get("hits_per_bar", 0.0) - gen.get(n, {}).get("hits_per_bar", 0.0)) for n in names)
    ref_profile = _profiles(ref, names)
    gen_profile = _profiles(gen, names)
    if ref_profile.shape != gen_profile.shape:  # different bar lengths: no pattern comparison
        pattern = float("nan")
    else:
        norm = float(np.linalg.norm(ref_profile) * np.linalg.norm(gen_profile))
        pattern = 1.0 - float(ref_profile @ gen_profile) / norm if norm > 0 else 1.0
    return {
        "timing_ms": round(weighted("offset_mean_ms"), 2),
        "velocity": round(weighted("velocity_mean"), 4),
        "density": round(density / max(reference["hits_per_bar"], 1e-9), 4),
        "pattern": round(pattern, 4),
        "swing_percent": round(abs(reference["swing_percent"] - groove["swing_percent"]), 2),
    }


def _profiles(instruments: Mapping[str, Any], names: list[str]) -> np.ndarray:
    lengths = {len(entry["profile"]) for entry in instruments.values()}
    length = lengths.pop() if len(lengths) == 1 else 0
    rows = [instruments[n]["profile"] if n in instruments else [0.0] * length for n in names]
    return np.asarray(rows, dtype=np.float64).ravel()
