"""Melody benchmark: tokens per second of generation on one core, and an 8-bar melody job through the API.

(a) ``generate`` for 8-bar melodies in 6/8 and 4/4 (different seeds), ``torch.set_num_threads(1)``: tokens
    sampled per second (target ≥ 2,000);
(b) ``POST /v1/melodies {"key": "D major", "time_signature": [6, 8], "bars": 8}`` with ``Prefer: wait`` against a
    real ``cadenza serve`` (one worker): median end-to-end time (target ≤ 150 ms).

Prints the machine and writes ``benchmarks/results/melody.json``.

    .venv/bin/python benchmarks/melody.py [--runs 20] [--jobs 20]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import torch
from _machine import describe_machine
from api_latency import start_server

from cadenza.engines.melody.generate import Sampling, generate
from cadenza.engines.melody.model import load_checkpoint

RESULTS = Path(__file__).resolve().parent / "results" / "melody.json"


def tokens_per_second(runs: int) -> dict:
    net, _ = load_checkpoint()
    rates = []
    for seed in range(runs):
        meter = (6, 8) if seed % 2 else (4, 4)
        started = time.perf_counter()
        melody = generate(
            net,
            mode="major",
            numerator=meter[0],
            denominator=meter[1],
            bars=8,
            pitch_range=(55, 88),
            sampling=Sampling(top_p=0.95),
            seed=seed,
        )
        rates.append(len(melody.tokens) / (time.perf_counter() - started))
    return {"runs": runs, "median_tokens_per_s": round(statistics.median(rates), 1), "target": 2000}


def api_job(jobs: int) -> dict:
    body = {"key": "D major", "time_signature": [6, 8], "bars": 8}
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-") as tmp:
        process, base = start_server(Path(tmp))
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                client.post("/v1/melodies", json={**body, "seed": 999}, headers={"Prefer": "wait=60"})  # model load
                samples, runs = [], []
                for seed in range(jobs):
                    started = time.perf_counter()
                    job = client.post("/v1/melodies", json={**body, "seed": seed}, headers={"Prefer": "wait=10"}).json()
                    samples.append(time.perf_counter() - started)
                    if job["status"] != "completed":
                        raise SystemExit(f"job {job['id']} is {job['status']}")
                    runs.append(job["run_duration_s"])
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    return {
        "jobs": jobs,
        "median_ms": round(1000 * statistics.median(samples), 1),
        "engine_run_median_ms": round(1000 * statistics.median(runs), 1),
        "target_ms": 150,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = describe_machine()
    print(f"machine: {info}")
    speed = tokens_per_second(args.runs)
    print(f"(a) generation: median {speed['median_tokens_per_s']} tokens/s on one core (target ≥ 2,000)")
    api = api_job(args.jobs)
    print(
        f"(b) 8-bar 6/8 melody through the API: median {api['median_ms']} ms "
        f"(engine run {api['engine_run_median_ms']} ms; target ≤ 150 ms)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "melody",
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": info,
                "generation": speed,
                "api": api,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
