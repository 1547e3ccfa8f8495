"""A tiny run of the synthetic separation benchmark (1 short clip) and its report files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cadenza.engines.separation.lab import evaluate

DATA = Path(__file__).resolve().parents[2] / "../shared/data/groove"


@pytest.mark.skipif(not (DATA / "info.csv").exists(), reason="Groove MIDI Dataset not beside the repository")
def test_tiny_benchmark_report(tmp_path):
    pytest.importorskip("fast_bss_eval")
    report = evaluate.evaluate(DATA, tmp_path / "work", clips=1, clip_s=4.0, seed=3)
    summary = report["summary"]
    for method in evaluate.METHODS:
        for target in evaluate.TARGETS:
            assert all(math.isfinite(v) for v in summary[method][target].values())
    for target in evaluate.TARGETS:
        sdr = {m: summary[m][target]["sdr_db_median"] for m in evaluate.METHODS}
        assert sdr["irm2"] > sdr["floor"] + 3.0
        assert sdr["irm2"] >= sdr["model"]
    clip = report["clips"][0]
    assert clip["groove"].endswith(".mid") and "drummer" in clip["groove"]
    json_path, md_path = evaluate.write_report(report, tmp_path / "eval")
    assert json.loads(json_path.read_text())["summary"] == summary
    assert "| drums | oracle ideal ratio mask" in md_path.read_text()


def test_benchmark_data_is_deterministic():
    a = evaluate.accompaniment(120.0, 4.0, evaluate.np.random.default_rng(5))
    b = evaluate.accompaniment(120.0, 4.0, evaluate.np.random.default_rng(5))
    assert [n.pitch for n in a[0].tracks[0].notes] == [n.pitch for n in b[0].tracks[0].notes]
    assert [n.pitch for n in a[1].tracks[0].notes] == [n.pitch for n in b[1].tracks[0].notes]
    assert len(a[0].tracks[0].notes) >= 4 and len(a[1].tracks[0].notes) >= 9
