"""Track benchmark: wall time of a 60 s track with stems and MP3, how time grows with the duration, peak memory.

(a) ``lo-fi hip hop, 84 bpm, A minor, dusty Rhodes`` at 60 s, formats wav + mp3, stems on: the median wall
    time of ``--runs`` warm runs (models loaded, librosa's JIT compiled by a first run that is reported apart),
    and the real-time factor (goal: ≤ 6 s, ≥ 10× real time);
(b) the same prompt at 10, 30, 60, 120 and 300 s: seconds per run and a least-squares line through them
    (linear growth: the residuals stay small);
(c) peak resident memory (``VmHWM`` of ``/proc/self/status``, Linux) of a fresh process making the 300 s track,
    against the same process after its imports and model loads.

Prints the machine and writes ``benchmarks/results/track.json``.

    .venv/bin/python benchmarks/track.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from _machine import describe_machine

from cadenza.engines.base import RunContext
from cadenza.engines.track.engine import run
from cadenza.engines.track.schema import TrackRequest

RESULTS = Path(__file__).resolve().parent / "results" / "track.json"
PROMPT = "lo-fi hip hop, 84 bpm, A minor, dusty Rhodes"
CACHE: dict = {}

MEMORY_CHILD = """
import re, sys, tempfile
from pathlib import Path
from cadenza.engines.base import RunContext
from cadenza.engines.track.engine import run
from cadenza.engines.track.schema import TrackRequest
from cadenza.engines.drums.engine import load_model as drums
from cadenza.engines.melody.engine import load_model as melody
folder = Path(tempfile.mkdtemp())
ctx = RunContext(workdir=folder, models_dir=folder, cache={})
drums("groove-transformer", ctx); melody("melody-transformer", ctx)
import librosa, pyloudnorm, scipy.signal  # noqa: F401
def peak_kib():  # VmHWM starts afresh at exec; ru_maxrss would carry the forking parent's peak
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
base = peak_kib()
run(TrackRequest(prompt=sys.argv[1], duration_s=300, seed=1), lambda p, s="": None, ctx)
print(base, peak_kib())
"""


def make(duration_s: float, folder: Path) -> float:
    workdir = Path(tempfile.mkdtemp(dir=folder))
    started = time.perf_counter()
    run(
        TrackRequest(prompt=PROMPT, duration_s=duration_s, seed=1, formats=["wav", "mp3"]),
        lambda percent, stage="": None,
        RunContext(workdir=workdir, models_dir=folder, cache=CACHE),
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    info = describe_machine(torch_threads=torch.get_num_threads())
    print(f"machine: {info}")
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-track-") as tmp:
        folder = Path(tmp)
        cold = make(60, folder)
        times = [make(60, folder) for _ in range(args.runs)]
        median = statistics.median(times)
        print(f"(a) 60 s track with stems and MP3: median {median:.2f} s warm = {60 / median:.1f}x real time "
              f"(goal <= 6 s, >= 10x); first run {cold:.2f} s (model loads, JIT)")  # fmt: skip
        durations = [10, 30, 60, 120, 300]
        scaling = [make(d, folder) for d in durations]
        slope, intercept = np.polyfit(durations, scaling, 1)
        residual = max(abs(t - (slope * d + intercept)) for d, t in zip(durations, scaling, strict=True))
        points = ", ".join(f"{d} s: {t:.2f} s" for d, t in zip(durations, scaling, strict=True))
        print(f"(b) {points}; fit {slope:.4f} s per audio second + {intercept:.2f} s, residual <= {residual:.2f} s")
    child = subprocess.run([sys.executable, "-c", MEMORY_CHILD, PROMPT], capture_output=True, text=True, check=True)
    base_kib, peak_kib = (int(v) for v in child.stdout.split()[-2:])
    print(f"(c) 300 s track: peak RSS {peak_kib / 1024:.0f} MiB ({(peak_kib - base_kib) / 1024:.0f} MiB over the "
          f"process after imports and model loads, {base_kib / 1024:.0f} MiB)")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "track",
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": info,
                "track_60s": {
                    "median_s": round(median, 3),
                    "runs_s": [round(t, 3) for t in times],
                    "x_real_time": round(60 / median, 2),
                    "first_run_s": round(cold, 3),
                },
                "scaling": {
                    "durations_s": durations,
                    "seconds": [round(t, 3) for t in scaling],
                    "slope_s_per_audio_s": round(float(slope), 5),
                    "intercept_s": round(float(intercept), 3),
                    "largest_residual_s": round(float(residual), 3),
                },
                "memory_300s": {"peak_rss_mib": round(peak_kib / 1024, 1), "base_rss_mib": round(base_kib / 1024, 1)},
            },
            indent=2,
        )  # fmt: skip
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
