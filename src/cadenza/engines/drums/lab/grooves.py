"""Groove statistics of drum grids and the MGEval overlapping-area comparison of two sets.

Per window (a Grid plus its meter) :func:`groove_features` computes:

* ``velocity_mean`` / ``velocity_std``: mean and standard deviation of the velocities (0–1) of all hits;
* ``offset_std``: standard deviation of the micro-timing offsets (16th-step units) of all hits;
* ``swingness``: after GrooveToolbox's microtiming features (Bruford, Lartillot, McDonald & Sandler,
  "Multidimensional similarity modelling of complex drum loops using the GrooveToolbox", ISMIR 2020),
  which count the swung 16th positions whose average timing deviates by more than 25 ms. Plainly:
  the fraction of the off-beat 16th positions (2nd and 4th 16th of each beat, x/4 meters) carrying
  hits whose mean offset is more than 25 ms late at the window's tempo; 0 without such hits, NaN
  for meters whose beat is not four 16ths. Our grid stores late hits of more than half a step on
  the next step, so this counts moderate swing only;
* ``syncopation``: Longuet-Higgins & Lee (1984, "The rhythmic interpretation of monophonic music",
  Music Perception 1(4)) syncopation as formalised by Smith & Honing (2006) and used by Witek et al.
  (2014, PLoS ONE 9(4)): metrical weights 0 (bar), −1 (half bar in 4/4), −2 (beat), −3 (8th),
  −4 (16th); every onset at weight w_n followed by a rest at a stronger position (the strongest step
  before the next onset, cyclically in the window) of weight w_r > w_n adds w_r − w_n. Computed on
  the union of kick, snare and tom onsets; reported per bar;
* ``step_density``: fraction of steps with at least one hit;
* ``density_<class>``: fraction of steps with a hit of each of the 9 drum classes.

:func:`overlapping_area` implements the overlapping area (OA) of Yang & Lerch (2020, "On the
evaluation of generative models in music", Neural Computing and Applications 32): Gaussian KDEs of
the intra-set distances of the reference set (leave-one-out pairwise |a−b|) and of the inter-set
distances (reference × generated); OA = ∫ min(p, q). 1 means indistinguishable distributions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import gaussian_kde

from cadenza.engines.drums.data import Grid
from cadenza.music.drum_map import DRUM_CLASSES

SWING_THRESHOLD_MS = 25.0
KICK_SNARE_TOMS = (0, 1, 4, 5, 6)
FEATURES: tuple[str, ...] = (
    "velocity_mean",
    "velocity_std",
    "offset_std",
    "swingness",
    "syncopation",
    "step_density",
    *(f"density_{name}" for name in DRUM_CLASSES),
)


def metrical_weights(steps_per_bar: int, steps_per_beat: int) -> np.ndarray:
    """Longuet-Higgins & Lee metrical weight of every step of a bar, shape (steps_per_bar,)."""
    weights = np.full(steps_per_bar, -4.0)
    for step in range(steps_per_bar):
        pos = step % steps_per_beat
        if pos == 0:
            weights[step] = -2.0
        elif steps_per_beat in (4, 8) and pos == steps_per_beat // 2 or steps_per_beat == 6 and pos in (2, 4):
            weights[step] = -3.0
    if steps_per_bar == 16 and steps_per_beat == 4:
        weights[8] = -1.0
    weights[0] = 0.0
    return weights


def syncopation(onsets: np.ndarray, steps_per_bar: int, steps_per_beat: int) -> float:
    """LHL syncopation per bar of a monophonic onset vector (n_steps,) bool (see module doc)."""
    n = len(onsets)
    idx = np.flatnonzero(onsets)
    if len(idx) == 0 or n == 0:
        return 0.0
    weights = np.resize(metrical_weights(steps_per_bar, steps_per_beat), n)
    total = 0.0
    for k, i in enumerate(idx):
        j = idx[(k + 1) % len(idx)]
        gap = (np.arange(i + 1, j) if j > i else np.r_[np.arange(i + 1, n), np.arange(0, j)]).astype(np.int64)
        if len(gap):
            strongest = weights[gap].max()
            if strongest > weights[i]:
                total += strongest - weights[i]
    return total / max(1, n // steps_per_bar)


def swingness(grid: Grid, steps_per_beat: int, tempo_bpm: float) -> float:
    """Fraction of off-beat 16th positions with hits whose mean offset is > 25 ms late (module doc)."""
    if steps_per_beat != 4:
        return float("nan")
    ms_per_step = 60_000.0 / tempo_bpm / 4.0
    positions = [s for s in range(grid.n_steps) if s % 2 == 1]
    late = 0
    for step in positions:
        hit = grid.hits[step]
        if hit.any() and grid.offset[step][hit].mean() * ms_per_step > SWING_THRESHOLD_MS:
            late += 1
    return late / len(positions) if positions else 0.0


def groove_features(grid: Grid, steps_per_bar: int, steps_per_beat: int, tempo_bpm: float) -> dict[str, float]:
    """Statistics of one window (see module doc); NaN where undefined (e.g. no hits)."""
    hits = grid.hits
    vel = grid.velocity[hits]
    off = grid.offset[hits]
    out = {
        "velocity_mean": float(vel.mean()) if vel.size else float("nan"),
        "velocity_std": float(vel.std()) if vel.size else float("nan"),
        "offset_std": float(off.std()) if off.size else float("nan"),
        "swingness": swingness(grid, steps_per_beat, tempo_bpm),
        "syncopation": syncopation(hits[:, KICK_SNARE_TOMS].any(1), steps_per_bar, steps_per_beat),
        "step_density": float(hits.any(1).mean()) if grid.n_steps else float("nan"),
    }
    for c, name in enumerate(DRUM_CLASSES):
        out[f"density_{name}"] = float(hits[:, c].mean()) if grid.n_steps else float("nan")
    return out


def feature_table(rows: Sequence[dict[str, float]]) -> dict[str, np.ndarray]:
    """List of per-window feature dicts → feature name → (n_windows,) float64 array."""
    return {name: np.asarray([r[name] for r in rows], dtype=np.float64) for name in FEATURES}


def _kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    if values.std() < 1e-9:  # degenerate: a narrow bump at the single value
        width = max(1e-3, (grid[-1] - grid[0]) / 200)
        density = np.exp(-0.5 * ((grid - values.mean()) / width) ** 2)
        return density / np.trapezoid(density, grid)
    return gaussian_kde(values)(grid)


def overlapping_area(reference: np.ndarray, generated: np.ndarray, max_pairs: int = 20_000, seed: int = 0) -> float:
    """MGEval OA between intra-set distances of ``reference`` and inter-set distances (module doc).

    NaNs are dropped; returns NaN if either set has fewer than 2 values. At most ``max_pairs``
    distances per set are used (seeded subsample).
    """
    ref = reference[np.isfinite(reference)]
    gen = generated[np.isfinite(generated)]
    if len(ref) < 2 or len(gen) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    intra = np.abs(ref[:, None] - ref[None, :])[~np.eye(len(ref), dtype=bool)]
    inter = np.abs(ref[:, None] - gen[None, :]).ravel()
    if len(intra) > max_pairs:
        intra = rng.choice(intra, max_pairs, replace=False)
    if len(inter) > max_pairs:
        inter = rng.choice(inter, max_pairs, replace=False)
    hi = max(intra.max(), inter.max())
    span = max(hi, 1e-6)
    xs = np.linspace(-0.1 * span, 1.1 * span, 512)
    return float(np.clip(np.trapezoid(np.minimum(_kde(intra, xs), _kde(inter, xs)), xs), 0.0, 1.0))


def summarize(table: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Feature → {mean, std} over windows, ignoring NaNs."""
    out = {}
    for name, values in table.items():
        finite = values[np.isfinite(values)]
        out[name] = {
            "mean": float(finite.mean()) if finite.size else float("nan"),
            "std": float(finite.std()) if finite.size else float("nan"),
        }
    return out
