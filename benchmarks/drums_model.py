"""Drums model benchmark: median time of one 4-bar 4/4 generation on one CPU core.

Loads the committed groove-transformer checkpoint, pins torch to one thread, warms up, then times
``--runs`` generations (different seeds) with default sampling (including the checkpoint's default
style guidance, which doubles the rows evaluated per step) and with top-k/top-p filtering.
Also reports the load average, since the machine may be shared. Target: median ≤ 50 ms.
Prints the machine and writes ``benchmarks/results/drums_model.json``.

    .venv/bin/python benchmarks/drums_model.py [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from _machine import describe_machine

from cadenza.engines.drums.model import DEFAULT_CHECKPOINT, load_model

RESULTS = Path(__file__).resolve().parent / "results" / "drums_model.json"
TARGET_MS = 50.0


def time_generation(model, runs: int, **sampling) -> list[float]:
    kwargs = dict(
        n_bars=4,
        steps_per_bar=16,
        steps_per_beat=4,
        style_weights={"funk": 1.0},
        fill_bars=[False, False, False, True],
        tempo_bpm=100.0,
    )
    for seed in range(3):
        model.generate(**kwargs, **sampling, seed=10_000 + seed)
    times = []
    for seed in range(runs):
        start = time.perf_counter()
        model.generate(**kwargs, **sampling, seed=seed)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    model = load_model()
    load_ms = (time.perf_counter() - start) * 1000.0
    info = describe_machine()
    print(f"machine: {info}")
    results = {}
    with torch.inference_mode():
        for name, sampling in {
            "default": {},
            "top_k_20_top_p_0_9": {"top_k": 20, "top_p": 0.9, "temperature": 0.9},
        }.items():
            times = time_generation(model, args.runs, **sampling)
            ordered = sorted(times)
            results[name] = {
                "median_ms": statistics.median(times),
                "p90_ms": ordered[int(0.9 * (len(ordered) - 1))],
                "min_ms": ordered[0],
                "runs": len(times),
                # 4 bars of 4/4 at 100 BPM last 9.6 s
                "real_time_factor": statistics.median(times) / 1000.0 / 9.6,
            }
            row = results[name]
            print(
                f"4 bars 4/4 ({name}): median {row['median_ms']:.1f} ms, p90 {row['p90_ms']:.1f} ms, "
                f"min {row['min_ms']:.1f} ms over {len(times)} runs (target ≤ {TARGET_MS:.0f} ms)"
            )
    payload = {
        "benchmark": "drums_model",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "checkpoint": DEFAULT_CHECKPOINT.name,
        "parameters": model.info["parameters"],
        "style_guidance": model.info.get("style_guidance", 1.0),
        "load_ms": load_ms,
        "target_median_ms": TARGET_MS,
        "results": results,
        "meets_target": results["default"]["median_ms"] <= TARGET_MS,
        "machine": info,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
