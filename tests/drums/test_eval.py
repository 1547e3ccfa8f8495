"""Evaluation pieces: n-gram baseline, groove statistics, MGEval OA, novelty, and a tiny full report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cadenza.engines.drums.data import N_PATTERNS, Grid, iter_windows, load_records
from cadenza.engines.drums.lab.baseline import NGramBaseline
from cadenza.engines.drums.lab.evaluate import (
    evaluate,
    max_jaccard,
    max_performance_similarity,
    nearest_pair,
    performance_similarity,
    to_markdown,
    window_arrays,
    write_report,
)
from cadenza.engines.drums.lab.grooves import (
    FEATURES,
    groove_features,
    metrical_weights,
    overlapping_area,
    swingness,
    syncopation,
)
from cadenza.engines.drums.lab.train import eval_windows, evaluate_nll, record_arrays
from cadenza.engines.drums.model import load_model

GMD = Path(__file__).resolve().parents[2] / "../shared/data/groove"


@pytest.fixture(scope="module")
def small_split() -> tuple[list, list]:
    records = load_records(GMD, ["train", "test"], limit=25)
    return [r for r in records if r.split == "train"], [r for r in records if r.split == "test"]


def test_baseline_distributions_are_normalised(small_split) -> None:
    train, _test = small_split
    base = NGramBaseline().fit(train)
    for context in [
        ((-1, -1, (16, 0)), (-1, (16, 0)), (16, 0)),
        ((4, 5, (16, 3)), (5, (16, 3)), (16, 3)),
        ((999, 998, (12, 7)), (998, (12, 7)), (12, 7)),
    ]:
        total = sum(base.pattern.prob(context, s) for s in range(N_PATTERNS))
        assert total == pytest.approx(1.0, abs=1e-9)
    total = sum(base.velocity.prob(((2, (16, 2)), 2), b) for b in range(8))
    assert total == pytest.approx(1.0, abs=1e-9)


def test_model_beats_baseline_on_held_out_files(small_split) -> None:
    """The committed model must have a lower NLL per step than the baseline on test files."""
    train, test = small_split
    baseline = NGramBaseline().fit(load_records(GMD, ["train"]))
    model = load_model()
    model_nll = evaluate_nll(model.net, eval_windows([record_arrays(r) for r in test], model.net.cfg.context_steps))
    base_nll = baseline.nll(test)
    assert model_nll["steps"] == base_nll["steps"]
    assert model_nll["total"] < base_nll["total"]
    assert model_nll["pattern"] < base_nll["pattern"]


def _grid(n_steps: int, hits: dict[int, list[int]], offset: float = 0.0) -> Grid:
    grid = Grid.empty(n_steps)
    for cls, steps in hits.items():
        grid.hits[steps, cls] = True
        grid.velocity[steps, cls] = 0.5
        grid.offset[steps, cls] = offset
    return grid


def test_syncopation_lhl() -> None:
    on_beats = np.zeros(16, bool)
    on_beats[[0, 4, 8, 12]] = True
    assert syncopation(on_beats, 16, 4) == 0.0
    anticipation = np.zeros(16, bool)
    anticipation[[0, 15]] = True  # the next onset (cyclic) fills the downbeat: no syncopation
    assert syncopation(anticipation, 16, 4) == 0.0
    pushed = np.zeros(16, bool)
    pushed[[0, 7]] = True  # the "and-a" of 2 tied over the half-bar (weight -1) from a 16th (-4): 3
    assert syncopation(pushed, 16, 4) == pytest.approx(3.0)
    assert metrical_weights(16, 4).tolist()[:5] == [0, -4, -3, -4, -2]
    assert metrical_weights(12, 6).tolist()[:7] == [0, -4, -3, -4, -3, -4, -2]


def test_swingness_counts_late_offbeat_16ths() -> None:
    straight = _grid(32, {2: list(range(32))})
    assert swingness(straight, 4, 100.0) == 0.0
    late = _grid(32, {2: list(range(1, 32, 2))}, offset=0.3)  # 0.3 step at 100 BPM = 45 ms
    assert swingness(late, 4, 100.0) == 1.0
    assert math.isnan(swingness(late, 6, 100.0))


def test_groove_features_values() -> None:
    grid = _grid(32, {0: [0, 16], 1: [8, 24], 2: list(range(0, 32, 2))})
    grid.velocity[0, 0] = 1.0
    feats = groove_features(grid, 16, 4, 120.0)
    assert set(feats) == set(FEATURES)
    assert feats["step_density"] == pytest.approx(0.5)
    assert feats["density_kick"] == pytest.approx(2 / 32)
    assert feats["offset_std"] == 0.0
    assert feats["velocity_mean"] == pytest.approx((1.0 + 19 * 0.5) / 20)


def test_overlapping_area_separates_distributions() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 300), rng.normal(0, 1, 300)
    far = rng.normal(8, 1, 300)
    assert overlapping_area(a, b) > 0.85
    assert overlapping_area(a, far) < 0.1
    assert math.isnan(overlapping_area(np.array([1.0]), b))


def test_max_jaccard() -> None:
    ref = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], bool)
    query = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]], bool)
    assert max_jaccard(query, ref).tolist() == pytest.approx([1.0, 1 / 3, 0.0])


def test_performance_similarity_copy_vs_same_hits_other_performance(small_split) -> None:
    """An exact copy of a train window scores 1; the same hits played with other velocities and timing
    keep hit-Jaccard 1 but score clearly below 1."""
    train, _test = small_split
    windows = [w for _r, _s, w in iter_windows(train, 2, 1)][:400]
    reference = window_arrays(windows)
    copy = Grid(windows[7].hits.copy(), windows[7].velocity.copy(), windows[7].offset.copy())
    played = Grid(copy.hits.copy(), copy.velocity.copy(), copy.offset.copy())
    played.velocity[played.hits] = np.clip(1.0 - played.velocity[played.hits], 0.05, 1.0)
    played.offset[played.hits] = np.where(played.offset[played.hits] >= 0, -0.3, 0.3)
    query = window_arrays([copy, played])
    best, index = max_performance_similarity(query, reference)
    assert best[0] == pytest.approx(1.0)
    assert performance_similarity(tuple(x[0] for x in query), tuple(x[index[0]] for x in reference)) == 1.0
    assert max_jaccard(query[0][1:], reference[0])[0] == pytest.approx(1.0)
    assert best[1] < 0.8
    pair = nearest_pair(1, 7, query, reference, tempo_bpm=120.0)
    assert pair["hit_jaccard"] == 1.0
    assert pair["velocity_mae"] > 0.05
    assert pair["offset_mae_steps"] > 0.2
    assert pair["offset_mae_ms"] == pytest.approx(pair["offset_mae_steps"] * 125.0)
    # disjoint hits score 0 and similarity never exceeds hit-Jaccard
    kick, snare = _grid(32, {0: [0, 16]}), _grid(32, {1: [8, 24]})
    pair_arrays = window_arrays([kick, snare])
    assert performance_similarity(tuple(x[0] for x in pair_arrays), tuple(x[1] for x in pair_arrays)) == 0.0
    empty = window_arrays([Grid.empty(32)])
    assert performance_similarity(tuple(x[0] for x in empty), tuple(x[0] for x in empty)) == 0.0
    assert (best <= max_jaccard(query[0], reference[0]) + 1e-6).all()


def test_max_performance_similarity_is_exact(small_split) -> None:
    """The bound-ordered search returns the same maximum as scoring every reference window."""
    train, test = small_split
    reference = window_arrays([w for _r, _s, w in iter_windows(train, 2, 1)])
    queries = window_arrays([w for _r, _s, w in iter_windows(test, 2)][:40])
    best, index = max_performance_similarity(queries, reference, chunk=16, first_block=4)
    for q in range(len(best)):
        full = performance_similarity(tuple(x[q][None] for x in queries), reference)
        assert best[q] == pytest.approx(full.max(), abs=1e-6)
        assert full[index[q]] == pytest.approx(best[q], abs=1e-6)
        assert 0.0 <= best[q] <= 1.0


def test_tiny_evaluation_report(tmp_path: Path) -> None:
    report = evaluate(
        GMD,
        windows_per_style=2,
        matched_windows=6,
        limit_files=8,
        min_style_files=1,
        classifier_epochs=3,
        guidance_candidates=(1.0, 2.0),
        sweep_windows=1,
    )
    assert report["style_guidance"] in (1.0, 2.0)
    sweep = report["style_fidelity"]["guidance_sweep"]
    assert set(sweep["candidates"]) == {"1.0", "2.0"}
    assert 0.0 <= sweep["train_windows"]["all"]["downbeat_kick_or_crash_share"] <= 1.0
    assert all(row["mean_downbeat_deviation"] >= 0.0 for row in sweep["candidates"].values())
    assert set(report["meters"]) >= {"4/4", "3/4", "6/8"}
    for key in ("nll", "style_fidelity", "groove_statistics", "novelty", "machine"):
        assert key in report
    for name in ("model", "baseline"):
        for part in ("total", "pattern", "velocity", "offset"):
            assert math.isfinite(report["nll"][name][part])
    assert report["nll"]["model"]["steps"] == report["nll"]["baseline"]["steps"] > 0
    feats = report["groove_statistics"]["features"]
    assert set(feats) == set(FEATURES)
    assert math.isfinite(feats["velocity_mean"]["generated"]["mean"])
    assert 0.0 <= feats["velocity_mean"]["overlapping_area"] <= 1.0
    assert 0.0 <= report["novelty"]["generated_max"] <= 1.0
    perf = report["novelty"]["performance"]
    for key in (
        "generated_max",
        "generated_mean_of_max",
        "generated_share_near_copy",
        "real_test_max",
        "real_test_mean_of_max",
        "real_test_share_near_copy",
    ):
        assert math.isfinite(perf[key]) and 0.0 <= perf[key] <= 1.0, key
    assert perf["generated_max"] <= report["novelty"]["generated_max"] + 1e-6
    assert perf["generated_mean_of_max"] <= perf["generated_max"]
    nearest = perf["generated_nearest"]
    assert nearest["performance_similarity"] == pytest.approx(perf["generated_max"])
    assert 0.0 <= nearest["hit_jaccard"] <= 1.0 and nearest["train_file"]
    assert math.isfinite(nearest["velocity_mae"]) and math.isfinite(nearest["offset_mae_ms"])
    json_path, md_path = write_report(report, tmp_path)
    assert json.loads(json_path.read_text())["model_version"] == report["model_version"]
    assert md_path.read_text() == to_markdown(report)
    assert "Held-out negative log-likelihood" in md_path.read_text()
