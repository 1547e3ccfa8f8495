"""Evaluation of the groove transformer on the GMD **test** split (never used for training or selection).

``cadenza eval drums --data <GMD folder>`` runs :func:`eval_command` and writes
``docs/eval/drums.json`` and ``docs/eval/drums.md``:

1. held-out NLL per step (nats) of the model and of the n-gram baseline (``baseline.py``), with
   their hit-pattern / velocity / offset components;
2. style fidelity: accuracy of the style classifier (``classifier.py``) on generated 2-bar windows
   per requested style, against its accuracy on real test windows (the ceiling);
3. groove statistics (``grooves.py``) of generated vs real test windows and their MGEval
   overlapping areas (Yang & Lerch 2020);
4. novelty: maximum Jaccard similarity of generated hit grids to any train window, and the
   maximum performance similarity (hits, velocity, micro-timing; :func:`performance_similarity`),
   for generated and, as reference, real test windows.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from rich.console import Console

from cadenza.engines.drums.data import Grid, iter_windows, load_records, meter_grid
from cadenza.engines.drums.lab.baseline import NGramBaseline
from cadenza.engines.drums.lab.classifier import (
    MIN_TRAIN_FILES,
    STEPS_PER_BAR,
    WINDOW_BARS,
    classifier_styles,
    style_windows,
    train_classifier,
)
from cadenza.engines.drums.lab.classifier import window_features as classifier_features
from cadenza.engines.drums.lab.feel import WINDOW_BARS as FEEL_WINDOW_BARS
from cadenza.engines.drums.lab.feel import window_spread
from cadenza.engines.drums.lab.grooves import FEATURES, feature_table, groove_features, overlapping_area, summarize
from cadenza.engines.drums.lab.style_feel import style_feel_report
from cadenza.engines.drums.lab.train import eval_windows, evaluate_nll, record_arrays
from cadenza.engines.drums.model import DEFAULT_CHECKPOINT, DrumModel, load_model, update_checkpoint_info
from cadenza.engines.drums.styles import load_catalog

# Published anchors: GrooveEvaluator statistics of real GMD vs GrooVAE samples (mean over windows).
ANCHORS = {
    "velocity_mean": {"gmd": 0.606, "groovae": 0.402},
    "velocity_std": {"gmd": 0.240, "groovae": 0.217},
    "offset_std": {"gmd": 0.169, "groovae": 0.057},
    "swingness": {"gmd": 0.335, "groovae": 0.047},
}


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _clean(obj: Any) -> Any:
    """Replace NaN/inf by None so the report is strict JSON."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return _finite(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _generate_window(
    model: DrumModel, style: str, tempo_bpm: float, seed: int, guidance: float, fill: bool = False
) -> Grid:
    return model.generate(
        n_bars=WINDOW_BARS,
        steps_per_bar=STEPS_PER_BAR,
        steps_per_beat=4,
        style_weights={style: 1.0},
        fill_bars=[fill] * WINDOW_BARS,
        tempo_bpm=tempo_bpm,
        seed=seed,
        style_guidance=guidance,
    )


DOWNBEAT_TOLERANCE = 0.1  # allowed mean over styles of |generated − train| share of bars with a downbeat
CRASH_FACTOR = 2.0  # allowed generated crash density: at most this × the train density (+0.005)


def structure_stats(grids: Sequence[Grid], steps_per_bar: int = STEPS_PER_BAR) -> dict[str, float]:
    """Share of bars with kick or crash on their first step, and crash hits per step."""
    bars = [g.slice(b, b + steps_per_bar) for g in grids for b in range(0, g.n_steps, steps_per_bar)]
    return {
        "downbeat_kick_or_crash_share": float(np.mean([bool(bar.hits[0, [0, 7]].any()) for bar in bars])),
        "crash_density": float(np.mean([g.hits[:, 7].mean() for g in grids])),
    }


def guidance_sweep(
    model: DrumModel,
    clf: Any,
    candidates: Sequence[float],
    windows: int,
    seed: int,
    train_stats: dict[str, dict[str, float]],
) -> tuple[float, dict[str, dict[str, float]]]:
    """Choose the classifier-free guidance scale: the one whose generated 2-bar beats the style
    classifier recognises best (mean accuracy over all classifier styles) among the scales that keep the
    groove's structure — per style, the share of bars with kick or crash on the downbeat deviates from
    that style's train windows by at most DOWNBEAT_TOLERANCE on average over styles, and the crash
    density is at most CRASH_FACTOR × train's (strong guidance over-emphasises what separates styles
    and breaks bar structure). Falls back to 1 (no guidance). ``train_stats``: style → stats of its
    train windows, plus ``"all"``. Uses the train-fitted, validation-selected classifier, train
    statistics and seeds disjoint from the reported ones: no test data."""
    tempo_of = model.info.get("style_tempo_bpm", {})
    sweep: dict[str, dict[str, float]] = {}
    for g in candidates:
        accs, all_grids, deviations = [], [], []
        for k, style in enumerate(clf.styles):
            tempo = float(tempo_of.get(style, 110.0))
            grids = [
                _generate_window(model, style, tempo, 900_000 + seed * 10_000 + k * 100 + i, g) for i in range(windows)
            ]
            all_grids.extend(grids)
            if style in train_stats:
                deviations.append(
                    abs(
                        structure_stats(grids)["downbeat_kick_or_crash_share"]
                        - train_stats[style]["downbeat_kick_or_crash_share"]
                    )
                )
            accs.append(float((clf.predict(np.stack([classifier_features(x) for x in grids])) == k).mean()))
        stats = structure_stats(all_grids)
        deviation = float(np.mean(deviations)) if deviations else 0.0
        sweep[str(g)] = {
            "style_accuracy": float(np.mean(accs)),
            **stats,
            "mean_downbeat_deviation": deviation,
            "keeps_structure": bool(
                deviation <= DOWNBEAT_TOLERANCE
                and stats["crash_density"] <= CRASH_FACTOR * train_stats["all"]["crash_density"] + 0.005
            ),
        }
    allowed = [g for g in candidates if sweep[str(g)]["keeps_structure"]] or [1.0]
    best = max(allowed, key=lambda g: (round(sweep.get(str(g), {}).get("style_accuracy", 0.0), 6), -g))
    return float(best), sweep


def max_jaccard(query: np.ndarray, reference: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Per query row, the maximum Jaccard similarity of its hit set to any reference row.

    ``query`` (n, d) and ``reference`` (m, d) bool hit grids flattened; empty pairs count as 0.
    """
    q = query.astype(np.float32)
    q_size = q.sum(1, keepdims=True)
    best = np.zeros(len(q), dtype=np.float64)
    for i in range(0, len(reference), chunk):
        r = reference[i : i + chunk].astype(np.float32)
        inter = q @ r.T
        union = q_size + r.sum(1)[None, :] - inter
        jac = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        best = np.maximum(best, jac.max(1))
    return best


NEAR_COPY_THRESHOLD = 0.9  # performance similarity at or above which a window counts as a near-copy


def window_arrays(grids: Sequence[Grid]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten windows of equal length for :func:`performance_similarity`.

    Returns ``(hits, velocity, offset)``, each (n, steps × 9): bool hits, float32 velocity in [0, 1]
    and float32 offset in 16th steps, both set to 0 where there is no hit.
    """
    hits = np.stack([g.hits.ravel() for g in grids])
    velocity = np.stack([g.velocity.ravel() for g in grids]).astype(np.float32) * hits
    offset = np.stack([g.offset.ravel() for g in grids]).astype(np.float32) * hits
    return hits, velocity, offset


def performance_similarity(
    a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """Performance-aware similarity of windows ``a`` and ``b`` (``window_arrays`` triples, broadcast
    over leading axes; the last axis is the cells)::

        sim = clip(1 − Σ_cells (|h_a − h_b| + |v_a − v_b| + |o_a − o_b|·h_a·h_b) / |cells hit in a or b|, 0, 1)

    with h ∈ {0, 1} the hit flag, v ∈ [0, 1] the velocity (0 without a hit) and o the micro-timing
    offset in 16th steps (only compared where both windows hit). A cell hit in one window only
    costs 1 + its velocity; a shared hit costs its velocity and offset differences. An exact copy
    scores 1, the same hits with other velocities or timing score less, and because every term is
    ≥ 0 the similarity never exceeds the hit-grid Jaccard similarity. Two empty windows score 0.
    """
    ha, va, oa = a
    hb, vb, ob = b
    ha, hb = ha.astype(np.float32), hb.astype(np.float32)
    cost = (np.abs(ha - hb) + np.abs(va - vb) + np.abs(oa - ob) * ha * hb).sum(-1)
    union = np.maximum(ha, hb).sum(-1)
    return np.where(union > 0, np.clip(1.0 - cost / np.maximum(union, 1.0), 0.0, 1.0), 0.0)


def _similarity_bound(q: tuple[np.ndarray, ...], r: tuple[np.ndarray, ...]) -> np.ndarray:
    """Upper bound (q_rows, r_rows) of :func:`performance_similarity` from matrix products only: the
    exact hit and unshared-velocity costs plus |Σ v_a − Σ v_b| and |Σ o_a − Σ o_b| over shared hits
    (triangle inequality), which never exceed the shared velocity and offset costs."""
    qh, qv, qo = (x.astype(np.float32) for x in q)
    rh, rv, ro = (x.astype(np.float32) for x in r)
    inter = qh @ rh.T
    union = qh.sum(1)[:, None] + rh.sum(1)[None, :] - inter
    qv_shared, rv_shared = qv @ rh.T, qh @ rv.T  # Σ over shared hits of each side's velocity
    cost = (
        (union - inter)
        + (qv.sum(1)[:, None] - qv_shared)
        + (rv.sum(1)[None, :] - rv_shared)
        + np.abs(qv_shared - rv_shared)
        + np.abs(qo @ rh.T - qh @ ro.T)
    )
    return np.where(union > 0, 1.0 - cost / np.maximum(union, 1.0), 0.0)


def max_performance_similarity(
    query: tuple[np.ndarray, np.ndarray, np.ndarray],
    reference: tuple[np.ndarray, np.ndarray, np.ndarray],
    chunk: int = 128,
    first_block: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Per query window, the maximum :func:`performance_similarity` to any reference window, exactly.

    ``query`` (n, d) and ``reference`` (m, d) triples from :func:`window_arrays`. An upper bound
    computed with matrix products (:func:`_similarity_bound`) orders the reference windows per
    query; they are scored exactly in that order, in blocks that double in size, until the best
    score so far reaches the bound of the next unscored window (so the result is exact, not a
    prefilter approximation). Returns ``(best (n,) float64, index (n,) int64)`` with ``index`` the
    best reference row (−1 where the best is 0).
    """
    n, m = len(query[0]), len(reference[0])
    best, index = np.zeros(n, np.float64), np.full(n, -1, np.int64)
    for lo in range(0, n, chunk):
        rows = np.arange(lo, min(lo + chunk, n))
        upper = _similarity_bound(tuple(x[rows] for x in query), reference) + 1e-4  # float32 rounding slack
        order = np.argsort(-upper, axis=1, kind="stable")
        bound = np.take_along_axis(upper, order, axis=1)
        start, block, active = 0, first_block, np.arange(len(rows))
        while len(active) and start < m:
            stop = min(start + block, m)
            cand = order[active, start:stop]  # (a, k)
            q = tuple(x[rows[active]][:, None, :] for x in query)
            r = tuple(x[cand] for x in reference)
            sims = performance_similarity(q, r)  # (a, k)
            arg = sims.argmax(1)
            top = sims[np.arange(len(active)), arg]
            better = top > best[rows[active]]
            best[rows[active[better]]] = top[better]
            index[rows[active[better]]] = cand[better, arg[better]]
            if stop >= m:
                break
            active = active[best[rows[active]] < bound[active, stop]]
            start, block = stop, block * 2
    return best, index


def nearest_pair(
    q: int,
    r: int,
    query: tuple[np.ndarray, np.ndarray, np.ndarray],
    reference: tuple[np.ndarray, np.ndarray, np.ndarray],
    tempo_bpm: float,
) -> dict[str, float]:
    """Hit-Jaccard, velocity MAE and offset MAE (16th steps and ms at ``tempo_bpm``) on shared hits of
    query row ``q`` and reference row ``r``."""
    qa = tuple(x[q] for x in query)
    ra = tuple(x[r] for x in reference)
    shared = qa[0] & ra[0]
    union = int((qa[0] | ra[0]).sum())
    offset_mae = float(np.abs(qa[2] - ra[2])[shared].mean()) if shared.any() else float("nan")
    return {
        "performance_similarity": float(performance_similarity(qa, ra)),
        "hit_jaccard": float(shared.sum() / union) if union else 0.0,
        "hits_window": int(qa[0].sum()),
        "hits_train": int(ra[0].sum()),
        "shared_hits": int(shared.sum()),
        "velocity_mae": float(np.abs(qa[1] - ra[1])[shared].mean()) if shared.any() else float("nan"),
        "offset_mae_steps": offset_mae,
        "offset_mae_ms": offset_mae * 60_000.0 / (tempo_bpm * 4),
        "tempo_bpm": tempo_bpm,
    }


METERS = ((4, 4), (3, 4), (6, 8), (5, 4), (7, 8))


def _meter_stats(grids: list[Grid], steps_per_bar: int, steps_per_beat: int) -> dict[str, float]:
    """Downbeat share (bars with kick or crash on step 0), beat-start vs other-step velocity, density."""
    bars = [g.slice(b, b + steps_per_bar) for g in grids for b in range(0, g.n_steps, steps_per_bar)]
    downbeat = np.mean([bool(bar.hits[0, [0, 7]].any()) for bar in bars]) if bars else float("nan")
    on_beat = np.zeros(steps_per_bar, bool)
    on_beat[::steps_per_beat] = True
    vel_on, vel_off = [], []
    for bar in bars:
        vel_on.extend(bar.velocity[on_beat][bar.hits[on_beat]].tolist())
        vel_off.extend(bar.velocity[~on_beat][bar.hits[~on_beat]].tolist())
    return {
        "bars": len(bars),
        "downbeat_kick_or_crash_share": float(downbeat),
        "velocity_on_beat_starts": float(np.mean(vel_on)) if vel_on else float("nan"),
        "velocity_elsewhere": float(np.mean(vel_off)) if vel_off else float("nan"),
        "step_density": float(np.mean([bar.hits.any(1).mean() for bar in bars])) if bars else float("nan"),
    }


def meter_check(model: DrumModel, records: list, seed: int, n_grooves: int, guidance: float) -> dict[str, Any]:
    """Generated 4-bar rock beats per meter vs all real GMD beat bars in that meter (any split)."""
    out = {}
    for numerator, denominator in METERS:
        steps_per_bar, steps_per_beat = meter_grid(numerator, denominator)
        grids = [
            model.generate(
                n_bars=4,
                steps_per_bar=steps_per_bar,
                steps_per_beat=steps_per_beat,
                style_weights={"rock": 1.0},
                fill_bars=[False] * 4,
                tempo_bpm=100.0,
                seed=seed * 1000 + i,
                style_guidance=guidance,
            )
            for i in range(n_grooves)
        ]
        real = [r.grid for r in records if (r.numerator, r.denominator) == (numerator, denominator) and not r.is_fill]
        out[f"{numerator}/{denominator}"] = {
            "steps_per_bar": steps_per_bar,
            "steps_per_beat": steps_per_beat,
            "real_gmd_files": len(real),
            "generated": _meter_stats(grids, steps_per_bar, steps_per_beat),
            "real": _meter_stats(real, steps_per_bar, steps_per_beat) if real else None,
        }
    return out


REFERENCE_STYLE = "Questlove"  # the style the reference grooves are generated in (with and without the reference)


def reference_check(model: DrumModel, test: list, seed: int, n_files: int = 12, bars: int = 8) -> dict[str, Any]:
    """Grooves generated from held-out 4/4 GMD test beat files as references (modes ``feel`` and ``vary``) and
    without one, in one style, each compared with the reference's own feel statistics (``feel.feel_distance``;
    0 = the same). Two seeds per file; the reference is the file's first 16 bars."""
    from cadenza.engines.drums.arrange import Meter
    from cadenza.engines.drums.engine import compose
    from cadenza.engines.drums.feel import feel_distance
    from cadenza.engines.drums.reference import Reference, output_stats
    from cadenza.engines.drums.schema import DrumsRequest

    style = load_catalog().get(REFERENCE_STYLE)
    files = [r for r in test if not r.is_fill and r.steps_per_bar == STEPS_PER_BAR and r.steps_per_beat == 4][:n_files]
    rows: dict[str, list[dict[str, float]]] = {"without": [], "feel": [], "vary": []}
    for record in files:
        n_bars = min(16, record.n_bars)
        reference = Reference(
            record.grid.slice(0, n_bars * STEPS_PER_BAR), 4, 4, record.tempo_bpm, STEPS_PER_BAR, n_bars
        )
        reference_feel = reference.stats()
        tempo = float(min(max(round(record.tempo_bpm, 2), 60.0), 200.0))
        for k in range(2):
            for mode in rows:
                params = DrumsRequest(
                    producer_style=style.name,
                    bars=bars,
                    tempo=tempo,
                    seed=seed + k,
                    reference_mode="vary" if mode == "vary" else "feel",
                )
                groove = compose(
                    model, style, params, Meter.of(4, 4), seed + k, reference=None if mode == "without" else reference
                )
                stats = output_stats(groove.placed, n_bars=bars, steps_per_bar=STEPS_PER_BAR, tempo_bpm=tempo)
                rows[mode].append(feel_distance(reference_feel, stats))
    keys = ("timing_ms", "velocity", "density", "pattern", "swing_percent")
    return {
        "style": style.name,
        "files": [r.id for r in files],
        "grooves_per_mode": len(rows["without"]),
        "bars": bars,
        "mean_distance": {
            mode: {k: round(float(np.nanmean([d[k] for d in ds])), 4) for k in keys} for mode, ds in rows.items()
        },
    }


def evaluate(
    data_dir: Path,
    checkpoint: Path | None = None,
    windows_per_style: int = 30,
    matched_windows: int = 300,
    seed: int = 0,
    limit_files: int | None = None,
    min_style_files: int = MIN_TRAIN_FILES,
    classifier_epochs: int = 30,
    guidance_candidates: Sequence[float] | None = None,
    sweep_windows: int = 20,
    console: Console | None = None,
    reference_files: int = 12,
) -> dict[str, Any]:
    """Run the whole evaluation; returns the report dict (see module doc).

    ``limit_files`` limits files per split (tiny runs for tests). ``guidance_candidates``: style
    guidance scales to choose from (:func:`guidance_sweep`); None = the checkpoint's default. Raises
    FileNotFoundError for a missing data folder or checkpoint.
    """
    console = console or Console(stderr=True)
    started = time.perf_counter()
    model = load_model(checkpoint)
    records = load_records(data_dir, limit=limit_files)
    train = [r for r in records if r.split == "train"]
    val = [r for r in records if r.split == "validation"]
    test = [r for r in records if r.split == "test"]
    if not train or not test:
        raise ValueError(f"{data_dir} has no train or test files")
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint or DEFAULT_CHECKPOINT),
        "model_version": model.version,
        "parameters": model.info.get("parameters"),
        "data": {"train_files": len(train), "validation_files": len(val), "test_files": len(test)},
        "seed": seed,
    }

    console.print("[bold]1/7[/] held-out NLL per step (test split)")
    context = model.net.cfg.context_steps
    model_nll = evaluate_nll(model.net, eval_windows([record_arrays(r, model.styles) for r in test], context))
    baseline = NGramBaseline().fit(train)
    baseline_nll = baseline.nll(test)
    report["nll"] = {
        "unit": "nats per 16th step",
        "model": model_nll,
        "baseline": baseline_nll,
        "baseline_description": "interpolated absolute-discounting trigram over hit patterns with step-in-bar "
        "context; velocity/offset bins per instrument and step-in-bar",
        "model_context_steps": context,
        "model_beats_baseline": model_nll["total"] < baseline_nll["total"],
    }

    console.print("[bold]2/7[/] style fidelity")
    styles = classifier_styles(train, min_style_files)
    clf, clf_summary = train_classifier(train, val, seed=seed, epochs=classifier_epochs, styles=styles)
    clf_summary["min_train_files"] = min_style_files
    x_test, y_test = style_windows(test, clf.styles)
    pred_test = clf.predict(x_test) if len(y_test) else np.zeros(0, np.int64)
    tempo_of = model.info.get("style_tempo_bpm", {})
    sweep = None
    if guidance_candidates:
        train_beats = [r for r in train if r.style in clf.styles and not r.is_fill and r.steps_per_bar == STEPS_PER_BAR]
        train_stats = {}
        for style in clf.styles:
            style_windows_ = [w for _r, _s, w in iter_windows([r for r in train_beats if r.style == style], 2)]
            if style_windows_:
                train_stats[style] = structure_stats(style_windows_)
        train_stats["all"] = structure_stats([w for _r, _s, w in iter_windows(train_beats, WINDOW_BARS)])
        guidance, sweep = guidance_sweep(model, clf, guidance_candidates, sweep_windows, seed, train_stats)
        sweep = {"train_windows": train_stats, "candidates": sweep}
    else:
        guidance = float(model.info.get("style_guidance", 1.0))
    report["style_guidance"] = guidance
    per_style = {}
    gen_windows: list[Grid] = []
    gen_tempos: list[float] = []
    for k, style in enumerate(clf.styles):
        tempo = float(tempo_of.get(style, 110.0))
        grids = [
            _generate_window(model, style, tempo, seed * 100_000 + k * 1000 + i, guidance)
            for i in range(windows_per_style)
        ]
        gen_windows.extend(grids)
        gen_tempos.extend([tempo] * len(grids))
        pred = clf.predict(np.stack([classifier_features(g) for g in grids]))
        real_mask = y_test == k
        per_style[style] = {
            "tempo_bpm": tempo,
            "generated_windows": len(grids),
            "generated_accuracy": float((pred == k).mean()),
            "real_test_windows": int(real_mask.sum()),
            "real_test_accuracy": float((pred_test[real_mask] == k).mean()) if real_mask.any() else None,
        }
    gen_acc = float(np.mean([v["generated_accuracy"] for v in per_style.values()])) if per_style else float("nan")
    # the ceiling is measured on the styles present in the test split, each style weighted equally
    real_accs = [v["real_test_accuracy"] for v in per_style.values() if v["real_test_accuracy"] is not None]
    ceiling = float(np.mean(real_accs)) if real_accs else float("nan")
    gen_acc_on_test_styles = float(
        np.mean([v["generated_accuracy"] for v in per_style.values() if v["real_test_accuracy"] is not None])
    )
    report["style_fidelity"] = {
        "classifier": clf_summary,
        "real_test_accuracy_window_weighted": float((pred_test == y_test).mean()) if len(y_test) else None,
        "ceiling_balanced_accuracy": ceiling,
        "generated_balanced_accuracy": gen_acc,
        "generated_balanced_accuracy_on_test_styles": gen_acc_on_test_styles,
        "ratio_to_ceiling": gen_acc_on_test_styles / ceiling if ceiling and math.isfinite(ceiling) else None,
        "target_ratio": 0.8,
        "per_style": per_style,
        "generation": "beat conditioning, 2 bars of 4/4, the style's median train tempo, temperature 1, no top-k/p, "
        f"style guidance {guidance}",
        "guidance_sweep": {
            **sweep,
            "windows_per_style": sweep_windows,
            "rule": f"highest mean generated style accuracy (all classifier styles) among scales whose per-style "
            f"downbeat share deviates from the style's train windows by ≤ {DOWNBEAT_TOLERANCE} on average and "
            f"whose crash density is ≤ {CRASH_FACTOR}× train + 0.005",
            "chosen": guidance,
        }
        if sweep
        else None,
    }

    console.print("[bold]3/7[/] groove statistics")
    real_with_start = list(iter_windows([r for r in test if r.steps_per_bar == STEPS_PER_BAR], WINDOW_BARS))
    rng = np.random.default_rng(seed)
    if len(real_with_start) > matched_windows:
        chosen = sorted(rng.choice(len(real_with_start), matched_windows, replace=False))
        real_with_start = [real_with_start[i] for i in chosen]
    real = [(rec, w) for rec, _s, w in real_with_start]
    matched = [
        _generate_window(model, rec.style, rec.tempo_bpm, seed * 100_000 + 50_000 + i, guidance, fill=rec.is_fill)
        for i, (rec, _w) in enumerate(real)
    ]
    real_table = feature_table([groove_features(w, 16, 4, rec.tempo_bpm) for rec, w in real])
    gen_table = feature_table(
        [groove_features(g, 16, 4, rec.tempo_bpm) for (rec, _w), g in zip(real, matched, strict=True)]
    )
    real_summary, gen_summary = summarize(real_table), summarize(gen_table)
    report["groove_statistics"] = {
        "windows": {"real_test": len(real), "generated": len(matched)},
        "generation": "one generated 2-bar window per real test window, with its style, tempo and beat/fill",
        "features": {
            name: {
                "real_test": real_summary[name],
                "generated": gen_summary[name],
                "overlapping_area": overlapping_area(real_table[name], gen_table[name], seed=seed),
            }
            for name in FEATURES
        },
        "published_anchors": ANCHORS,
    }

    console.print("[bold]4/7[/] novelty")
    train_windows = list(iter_windows([r for r in train if r.steps_per_bar == STEPS_PER_BAR], 2, 1))
    train_arrays = window_arrays([w for _r, _s, w in train_windows])
    train_hits = train_arrays[0]
    all_generated = gen_windows + matched
    all_tempos = gen_tempos + [rec.tempo_bpm for rec, _w in real]
    gen_arrays = window_arrays(all_generated)
    real_arrays = window_arrays([w for _r, w in real])
    gen_sim = max_jaccard(gen_arrays[0], train_hits)
    real_sim = max_jaccard(real_arrays[0], train_hits)
    gen_perf, gen_idx = max_performance_similarity(gen_arrays, train_arrays)
    real_perf, real_idx = max_performance_similarity(real_arrays, train_arrays)

    gen_sources = [
        f"{style} beat, seed {seed * 100_000 + k * 1000 + i}"
        for k, style in enumerate(clf.styles)
        for i in range(windows_per_style)
    ]
    gen_sources += [
        f"matched to test file {rec.id} ({rec.style}, {'fill' if rec.is_fill else 'beat'})" for rec, _w in real
    ]
    real_sources = [f"test file {rec.id} from bar {start // STEPS_PER_BAR}" for rec, start, _w in real_with_start]

    def nearest(
        sims: np.ndarray, idx: np.ndarray, arrays: tuple, tempos: list[float], sources: list[str]
    ) -> dict[str, Any] | None:
        q = int(sims.argmax())
        if idx[q] < 0:
            return None
        rec, start, _w = train_windows[idx[q]]
        return {
            "window": q,
            "window_source": sources[q],
            "train_file": rec.id,
            "train_start_bar": start // STEPS_PER_BAR,
            **nearest_pair(q, int(idx[q]), arrays, train_arrays, tempos[q]),
        }

    report["novelty"] = {
        "measure": "max Jaccard similarity of a window's hit grid (32 steps × 9) to any 2-bar train window (hop 1 bar)",
        "train_windows": len(train_hits),
        "generated_windows": len(all_generated),
        "generated_max": float(gen_sim.max()),
        "generated_mean_of_max": float(gen_sim.mean()),
        "generated_share_identical": float((gen_sim >= 0.999).mean()),
        "generated_share_above_0_9": float((gen_sim >= 0.9).mean()),
        "real_test_max": float(real_sim.max()),
        "real_test_mean_of_max": float(real_sim.mean()),
        "real_test_share_identical": float((real_sim >= 0.999).mean()),
        "real_test_share_above_0_9": float((real_sim >= 0.9).mean()),
        "performance": {
            "measure": "max performance similarity to any 2-bar train window (hop 1 bar): 1 − Σ over the "
            "32×9 cells of (|hit_a − hit_b| + |velocity_a − velocity_b| + |offset_a − offset_b|·hit_a·hit_b) "
            "/ number of cells hit in either window, clipped to [0, 1]; velocity in [0, 1] (0 without a hit), "
            "offset in 16th steps; ≤ hit-grid Jaccard, 1 only for an exact copy",
            "near_copy_threshold": NEAR_COPY_THRESHOLD,
            "generated_max": float(gen_perf.max()),
            "generated_mean_of_max": float(gen_perf.mean()),
            "generated_share_near_copy": float((gen_perf >= NEAR_COPY_THRESHOLD).mean()),
            "real_test_max": float(real_perf.max()),
            "real_test_mean_of_max": float(real_perf.mean()),
            "real_test_share_near_copy": float((real_perf >= NEAR_COPY_THRESHOLD).mean()),
            "generated_nearest": nearest(gen_perf, gen_idx, gen_arrays, all_tempos, gen_sources),
            "real_test_nearest": nearest(
                real_perf, real_idx, real_arrays, [rec.tempo_bpm for rec, _w in real], real_sources
            ),
        },
    }
    console.print("[bold]5/7[/] meters")
    report["meters"] = meter_check(model, records, seed, max(2, windows_per_style // 3), guidance)
    console.print("[bold]6/7[/] style timing and dynamics (every catalogue style)")
    report["style_timing"] = style_feel_report(model, load_catalog(), seeds=range(seed, seed + 8), bars=8)
    report["style_timing"]["hiphop_soul"]["gmd_test_split"] = window_spread(
        [r for r in test if r.style in ("hiphop", "soul") and not r.is_fill], FEEL_WINDOW_BARS
    )
    console.print("[bold]7/7[/] reference grooves (held-out test files as references)")
    report["reference_grooves"] = reference_check(model, test, seed, n_files=reference_files)
    report["machine"] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    report["eval_seconds"] = round(time.perf_counter() - started, 1)
    return _clean(report)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _sweep_lines(sweep: dict[str, Any]) -> list[str]:
    train = sweep["train_windows"]["all"]
    lines = [
        "",
        f"Style guidance sweep ({sweep['windows_per_style']} windows per style, other seeds). Rule: {sweep['rule']}. "
        f"Train windows: downbeat share {_fmt(train['downbeat_kick_or_crash_share'])}, crash density "
        f"{_fmt(train['crash_density'])}.",
        "",
        "| guidance | style accuracy | downbeat share | mean per-style downbeat deviation | crash density | "
        "keeps structure |",
        "|---|---|---|---|---|---|",
    ]
    for g, row in sweep["candidates"].items():
        lines.append(
            f"| {g} | {_fmt(row['style_accuracy'])} | {_fmt(row['downbeat_kick_or_crash_share'])} | "
            f"{_fmt(row['mean_downbeat_deviation'])} | {_fmt(row['crash_density'])} | {row['keeps_structure']} |"
        )
    lines.append("")
    return lines


def _performance_lines(perf: dict[str, Any], real_windows: int, generated_windows: int) -> list[str]:
    threshold = perf["near_copy_threshold"]
    lines = [
        f"Performance similarity (hits, velocity and micro-timing): {perf['measure']}. Near-copy: ≥ {threshold}.",
        "",
        f"| set | windows | max | mean of per-window max | share ≥ {threshold} (near-copy) |",
        "|---|---|---|---|---|",
        f"| generated | {generated_windows} | {_fmt(perf['generated_max'])} | {_fmt(perf['generated_mean_of_max'])} | "
        f"{_fmt(perf['generated_share_near_copy'])} |",
        f"| real test (reference) | {real_windows} | {_fmt(perf['real_test_max'])} | "
        f"{_fmt(perf['real_test_mean_of_max'])} | {_fmt(perf['real_test_share_near_copy'])} |",
        "",
    ]
    for name, key in (("generated", "generated_nearest"), ("real test", "real_test_nearest")):
        pair = perf.get(key)
        if pair:
            lines.append(
                f"Most similar {name} window (#{pair['window']}: {pair['window_source']}): "
                f"train file `{pair['train_file']}` from bar "
                f"{pair['train_start_bar']} (0-based); performance similarity {_fmt(pair['performance_similarity'])}, "
                f"hit-Jaccard {_fmt(pair['hit_jaccard'])} ({pair['shared_hits']} shared of {pair['hits_window']} / "
                f"{pair['hits_train']} hits), velocity MAE {_fmt(pair['velocity_mae'])}, offset MAE "
                f"{_fmt(pair['offset_mae_steps'])} steps = {_fmt(pair['offset_mae_ms'], 1)} ms at "
                f"{_fmt(pair['tempo_bpm'], 1)} BPM (shared hits)."
            )
    lines.append("")
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    """Human-readable rendering of the report."""
    nll = report["nll"]
    lines = [
        "# Drums model evaluation (GMD test split)",
        "",
        f"Model `{report['model_version']}` ({report['parameters']:,} parameters), checkpoint "
        f"`{Path(report['checkpoint']).name}`; files: {report['data']}. Seed {report['seed']}; "
        f"run time {report['eval_seconds']} s on {report['machine']['platform']}.",
        "",
        "## 1. Held-out negative log-likelihood (nats per 16th step)",
        "",
        "| | total | hit pattern | velocity | offset | steps |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("model", "baseline"):
        row = nll[name]
        lines.append(
            f"| {name} | {_fmt(row['total'])} | {_fmt(row['pattern'])} | {_fmt(row['velocity'])} | "
            f"{_fmt(row['offset'])} | {row['steps']} |"
        )
    lines += [
        "",
        f"Baseline: {nll['baseline_description']}. Model context: {nll['model_context_steps']} steps, restarted "
        f"at every window; the baseline sees whole files. Model beats baseline: **{nll['model_beats_baseline']}**.",
        "",
        "## 2. Style fidelity",
        "",
    ]
    sf = report["style_fidelity"]
    clf = sf["classifier"]
    lines += [
        f"Classifier: MLP on 2-bar 4/4 beat windows of styles {', '.join(clf['styles'])} "
        f"(≥ {clf['min_train_files']} train files); "
        f"{clf['train_windows']} train windows, validation accuracy {_fmt(clf['validation_accuracy'])}.",
        f"Generation: {sf['generation']}.",
        "",
        "| style | tempo BPM | real test windows | accuracy on real test | accuracy on generated |",
        "|---|---|---|---|---|",
    ]
    for style, row in sf["per_style"].items():
        lines.append(
            f"| {style} | {_fmt(row['tempo_bpm'], 1)} | {row['real_test_windows']} | "
            f"{_fmt(row['real_test_accuracy'])} | {_fmt(row['generated_accuracy'])} |"
        )
    lines += [
        "",
        "Ceiling (balanced accuracy on real test windows, styles present in test): "
        f"{_fmt(sf['ceiling_balanced_accuracy'])}; "
        f"generated on the same styles: {_fmt(sf['generated_balanced_accuracy_on_test_styles'])}; "
        f"ratio **{_fmt(sf['ratio_to_ceiling'])}** (target ≥ {sf['target_ratio']}). "
        f"Generated, all classifier styles: {_fmt(sf['generated_balanced_accuracy'])}.",
        "",
        *(_sweep_lines(sf["guidance_sweep"]) if sf.get("guidance_sweep") else []),
        f"Style guidance used: {report['style_guidance']}.",
        "",
        "## 3. Groove statistics (mean ± std over 2-bar windows)",
        "",
        "| feature | real test | generated | overlapping area | anchor GMD / GrooVAE |",
        "|---|---|---|---|---|",
    ]
    gs = report["groove_statistics"]
    for name, row in gs["features"].items():
        anchor = gs["published_anchors"].get(name)
        anchor_text = f"{anchor['gmd']} / {anchor['groovae']}" if anchor else ""
        lines.append(
            f"| {name} | {_fmt(row['real_test']['mean'])} ± {_fmt(row['real_test']['std'])} | "
            f"{_fmt(row['generated']['mean'])} ± {_fmt(row['generated']['std'])} | "
            f"{_fmt(row['overlapping_area'])} | {anchor_text} |"
        )
    nov = report["novelty"]
    lines += [
        "",
        f"Windows: {gs['windows']}. {gs['generation']}. Definitions: `grooves.py` docstrings.",
        "",
        "## 4. Novelty",
        "",
        f"Measure: {nov['measure']}; {nov['train_windows']} train windows.",
        "",
        "| set | windows | max | mean of per-window max | share ≥ 0.9 | share identical |",
        "|---|---|---|---|---|---|",
        f"| generated | {nov['generated_windows']} | {_fmt(nov['generated_max'])} | "
        f"{_fmt(nov['generated_mean_of_max'])} | {_fmt(nov['generated_share_above_0_9'])} | "
        f"{_fmt(nov['generated_share_identical'])} |",
        f"| real test (reference) | {gs['windows']['real_test']} | {_fmt(nov['real_test_max'])} | "
        f"{_fmt(nov['real_test_mean_of_max'])} | {_fmt(nov['real_test_share_above_0_9'])} | "
        f"{_fmt(nov['real_test_share_identical'])} |",
        "",
        *_performance_lines(nov["performance"], gs["windows"]["real_test"], nov["generated_windows"]),
        "## 5. Meters (4-bar rock beats at 100 BPM vs real GMD beat bars of that meter, all splits)",
        "",
        "| meter | steps/bar, /beat | GMD files | bars gen / real | downbeat kick-or-crash gen / real | "
        "velocity on beat starts gen / real | velocity elsewhere gen / real | step density gen / real |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for meter, row in report["meters"].items():
        gen, real = row["generated"], row["real"] or {}

        def pair(key: str, gen: dict = gen, real: dict = real) -> str:
            return f"{_fmt(gen.get(key))} / {_fmt(real.get(key))}"

        lines.append(
            f"| {meter} | {row['steps_per_bar']}, {row['steps_per_beat']} | {row['real_gmd_files']} | "
            f"{gen['bars']} / {real.get('bars', 0)} | {pair('downbeat_kick_or_crash_share')} | "
            f"{pair('velocity_on_beat_starts')} | {pair('velocity_elsewhere')} | {pair('step_density')} |"
        )
    lines.append("")
    if "style_timing" in report:
        lines += _style_timing_lines(report["style_timing"])
    if "reference_grooves" in report:
        lines += _reference_lines(report["reference_grooves"])
    return "\n".join(lines)


def _style_timing_lines(timing: dict[str, Any]) -> list[str]:
    lines = [
        f"## 6. Style timing and dynamics ({len(timing['seeds'])} seeds × {timing['bars']} bars per style, verse, "
        "humanized, at the style's default tempo)",
        "",
        "Per instrument, offsets in ms relative to the swung grid (roll subdivisions left out): measured "
        "mean ± spread, what the catalogue entry declares, and the GMD genres it is conditioned on (train split, "
        "within-groove spread; gmd_feel.json). Instruments the entry does not declare get the GMD feel × "
        "model_timing_scale.",
        "",
        "| style | instrument | hits | measured | declared | GMD genres |",
        "|---|---|---|---|---|---|",
    ]
    for name, style in timing["styles"].items():
        for instrument, row in style["instruments"].items():
            declared = (
                f"{row['declared_mean_ms']:+g} ± {row['declared_std_ms']:g}" if "declared_mean_ms" in row else "—"
            )
            gmd = f"{row['gmd_mean_ms']:+.1f} ± {row['gmd_std_ms']:.1f}" if "gmd_mean_ms" in row else "—"
            lines.append(
                f"| {name} | {instrument} | {row['hits']} | {row['measured_mean_ms']:+.1f} ± "
                f"{row['measured_std_ms']:.1f} | {declared} | {gmd} |"
            )
    lines += [
        "",
        "| style | tempo | swing % | offset spread (16th steps, per 2-bar window) | velocity mean | lowest velocity |",
        "|---|---|---|---|---|---|",
    ]
    for name, style in timing["styles"].items():
        lines.append(
            f"| {name} | {style['tempo_bpm']:g} | {style['swing_percent']:g} | {style['offset_std_steps']:.3f} | "
            f"{style['velocity_mean']:.3f} | {style['velocity_min']} |"
        )
    pooled = timing.get("hiphop_soul") or {}
    if pooled:
        real = pooled.get("gmd_test_split", pooled["gmd_hiphop_soul"])
        lines += [
            "",
            f"J Dilla + Questlove pooled: offset spread **{pooled['offset_std_steps']:.3f}** of a 16th step "
            f"against {real['offset_std_steps']:.3f} for real GMD hip-hop and soul playing (test split, 2-bar "
            f"windows; ratio {pooled['offset_std_steps'] / real['offset_std_steps']:.2f}); velocity mean "
            f"**{pooled['velocity_mean']:.3f}** against {real['velocity_mean']:.3f}.",
            "",
        ]
    return lines


def _reference_lines(check: dict[str, Any]) -> list[str]:
    lines = [
        f"## 7. Reference grooves ({len(check['files'])} held-out GMD test beat files as references, "
        f"{check['grooves_per_mode'] // max(1, len(check['files']))} seeds each, {check['bars']} bars, "
        f"style {check['style']})",
        "",
        "Mean distance of the output's feel to the reference's (feel.feel_distance; 0 = the same): timing = mean "
        "|Δ per-instrument mean offset| (ms), velocity = mean |Δ per-instrument mean velocity| (0–1), density = "
        "Σ|Δ hits per bar| / reference hits per bar, pattern = 1 − cosine of the per-step onset profiles, swing = "
        "|Δ swing %|.",
        "",
        "| grooves | timing ms | velocity | density | pattern | swing % |",
        "|---|---|---|---|---|---|",
    ]
    for mode, row in check["mean_distance"].items():
        label = {"without": "without the reference", "feel": "reference_mode feel", "vary": "reference_mode vary"}[mode]
        lines.append(
            f"| {label} | {row['timing_ms']:.2f} | {row['velocity']:.3f} | {row['density']:.3f} | "
            f"{row['pattern']:.3f} | {row['swing_percent']:.2f} |"
        )
    lines.append("")
    return lines


def headline_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The few numbers worth showing in /v1/models."""
    sf = report["style_fidelity"]
    return {
        "test_nll_per_step": report["nll"]["model"]["total"],
        "baseline_test_nll_per_step": report["nll"]["baseline"]["total"],
        "style_accuracy_generated": sf["generated_balanced_accuracy_on_test_styles"],
        "style_accuracy_ceiling": sf["ceiling_balanced_accuracy"],
        "style_ratio_to_ceiling": sf["ratio_to_ceiling"],
        "novelty_max_jaccard": report["novelty"]["generated_max"],
        "novelty_max_performance_similarity": report["novelty"]["performance"]["generated_max"],
        "style_guidance": report["style_guidance"],
        "source": "docs/eval/drums.json",
    }


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "drums.json", out_dir / "drums.md"
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    md_path.write_text(to_markdown(report))
    return json_path, md_path


def eval_command(
    data: Path = typer.Option(..., "--data", help="Groove MIDI Dataset folder (with info.csv)."),
    checkpoint: Path = typer.Option(DEFAULT_CHECKPOINT, "--checkpoint", help="Checkpoint to evaluate."),
    out_dir: Path = typer.Option(Path("docs/eval"), "--out-dir", help="Folder for drums.json and drums.md."),
    windows_per_style: int = typer.Option(30, "--windows-per-style", min=1),
    matched_windows: int = typer.Option(300, "--matched-windows", min=2),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(2, "--threads", min=1, help="torch CPU threads."),
    limit_files: int | None = typer.Option(None, "--limit-files", min=1, help="Files per split (tiny runs)."),
    sweep_guidance: bool = typer.Option(
        True, "--sweep-guidance/--no-sweep-guidance", help="Choose the style guidance scale (1, 1.5, 2, 3) first."
    ),
    store_metrics: bool = typer.Option(
        False, "--store-metrics", help="Also write the headline metrics into the checkpoint's info (/v1/models)."
    ),
) -> None:
    """Evaluate the drums model on the GMD test split; write drums.json and drums.md."""
    torch.set_num_threads(threads)
    console = Console(stderr=True)
    report = evaluate(
        data,
        checkpoint,
        windows_per_style=windows_per_style,
        matched_windows=matched_windows,
        seed=seed,
        limit_files=limit_files,
        min_style_files=MIN_TRAIN_FILES if limit_files is None else 1,
        guidance_candidates=(1.0, 1.5, 2.0, 3.0) if sweep_guidance else None,
        sweep_windows=20 if limit_files is None else 2,
        console=console,
        reference_files=12 if limit_files is None else 1,
    )
    json_path, md_path = write_report(report, out_dir)
    if store_metrics:
        update_checkpoint_info(
            checkpoint, {"metrics": headline_metrics(report), "style_guidance": report["style_guidance"]}
        )
    console.print(
        f"NLL model {report['nll']['model']['total']:.3f} vs baseline {report['nll']['baseline']['total']:.3f} "
        f"nats/step; style ratio {report['style_fidelity']['ratio_to_ceiling']}; wrote {json_path} and {md_path}"
    )
