"""Distributed executor benchmark: throughput and job pick-up, Celery (1 and 2 workers) against the embedded
executor (``cadenza serve`` with 1 and 2 local worker processes on SQLite), on the same machine, over HTTP.

(a) throughput: 100 one-bar drums jobs submitted as one ``POST /v1/batches``; jobs per second until the batch
    is completed;
(b) pick-up latency: 20 jobs submitted one at a time to idle workers (``Prefer: wait``); the median of each
    job's ``queue_duration_s`` (submit → processing). Goal: Celery ≤ 50 ms, embedded unchanged.

Needs ``redis-server`` and ``pgserver`` (``make cluster`` installs them). Prints the machine and writes
``benchmarks/results/distributed.json``.

    .venv/bin/python benchmarks/distributed.py [--jobs 100] [--pickups 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _machine import describe_machine, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from cluster import free_port, running  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "distributed.json"
JOB = {"producer_style": "J Dilla", "bars": 1, "tempo": 90}


def throughput(base_url: str, n: int) -> float:
    jobs = [{"kind": "drums", "params": {**JOB, "seed": i}} for i in range(n)]
    started = time.perf_counter()
    batch = httpx.post(f"{base_url}/v1/batches", json={"jobs": jobs}, timeout=60).json()
    while True:
        view = httpx.get(f"{base_url}/v1/batches/{batch['id']}", timeout=60).json()
        if view["status"] == "completed":
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    assert view["counts"]["completed"] == n, view["counts"]
    return n / elapsed


def pickups(base_url: str, n: int) -> list[float]:
    values = []
    for i in range(n):
        time.sleep(0.3)  # idle workers
        job = httpx.post(
            f"{base_url}/v1/drums", json={**JOB, "seed": i}, headers={"Prefer": "wait=30"}, timeout=60
        ).json()
        assert job["status"] == "completed", job
        values.append(job["queue_duration_s"] * 1000)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--pickups", type=int, default=20)
    args = parser.parse_args()
    runs: dict[str, dict[str, float]] = {}
    for executor in ("local", "celery"):
        for workers in (1, 2):
            with (
                tempfile.TemporaryDirectory() as tmp,
                running(Path(tmp), free_port(), workers, executor=executor, quiet=True) as base_url,
            ):
                pickups(base_url, 2)  # warm: models loaded in each process
                rate = throughput(base_url, args.jobs)
                latency = pickups(base_url, args.pickups) if workers == 1 else []
            name = f"{executor}-{workers}"
            runs[name] = {"jobs_per_s": round(rate, 2)}
            if latency:
                runs[name]["pickup_median_ms"] = round(statistics.median(latency), 1)
            print(name, runs[name], flush=True)
    ratios = {
        "celery1_over_local1_throughput": round(runs["celery-1"]["jobs_per_s"] / runs["local-1"]["jobs_per_s"], 2),
        "celery2_over_celery1_throughput": round(runs["celery-2"]["jobs_per_s"] / runs["celery-1"]["jobs_per_s"], 2),
        "local2_over_local1_throughput": round(runs["local-2"]["jobs_per_s"] / runs["local-1"]["jobs_per_s"], 2),
    }
    results = {"machine": describe_machine(), "date": datetime.now(UTC).isoformat(), "runs": runs, "ratios": ratios}
    print(json.dumps(ratios, indent=2))
    write_results(RESULTS, results)


if __name__ == "__main__":
    main()
