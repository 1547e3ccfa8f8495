"""API latency benchmark against a real ``cadenza serve`` subprocess (one local worker, temp dirs).

(a) ``GET /v1/jobs/{id}`` latency (median, p95) while the worker is busy with long drums jobs;
(b) end-to-end time of a 4-bar drums job submitted with ``Prefer: wait=10`` (median, p95 of ``--jobs``).

Prints the machine and writes ``benchmarks/results/api_latency.json``.

    .venv/bin/python benchmarks/api_latency.py [--gets 300] [--jobs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _machine import describe_machine

RESULTS = Path(__file__).resolve().parent / "results" / "api_latency.json"
LONG_JOB = {"producer_style": "J Dilla", "bars": 32, "tempo": 90, "formats": ["midi", "wav"]}
SHORT_JOB = {"producer_style": "J Dilla", "bars": 4, "tempo": 90}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def start_server(tmp: Path, rate_limit: str | None = "1000000/minute") -> tuple[subprocess.Popen, str]:
    """``cadenza serve`` on a free port with one worker and temp dirs; ``rate_limit`` None = the default."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
    env.update(
        CADENZA_PORT=str(port),
        CADENZA_DATABASE_URL=f"sqlite:///{tmp / 'bench.db'}",
        CADENZA_FILES_DIR=str(tmp / "files"),
        CADENZA_MODELS_DIR=str(tmp / "models"),
        CADENZA_WORKERS="1",
        CADENZA_LOG_LEVEL="warning",
        CADENZA_SHUTDOWN_TIMEOUT_S="0",
    )
    if rate_limit is not None:
        env["CADENZA_RATE_LIMIT"] = rate_limit
    cadenza = Path(sys.executable).with_name("cadenza")
    log = (tmp / "server.log").open("wb")
    process = subprocess.Popen([str(cadenza), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {(tmp / 'server.log').read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not start")


def busy_get_latency(client: httpx.Client, gets: int) -> dict[str, float]:
    long_ids = [client.post("/v1/drums", json={**LONG_JOB, "seed": i}).json()["id"] for i in range(3)]
    target = long_ids[-1]  # a queued job behind the running ones
    deadline = time.monotonic() + 120
    while client.get(f"/v1/jobs/{long_ids[0]}").json()["status"] != "processing":
        if time.monotonic() > deadline:
            raise SystemExit("worker never started the long job")
        time.sleep(0.05)
    samples_ms = []
    for _ in range(gets):
        started = time.perf_counter()
        response = client.get(f"/v1/jobs/{target}")
        samples_ms.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    still_busy = client.get(f"/v1/jobs/{long_ids[0]}").json()["status"] == "processing"
    for job_id in long_ids:
        client.post(f"/v1/jobs/{job_id}/cancel")
    for job_id in long_ids:
        while client.get(f"/v1/jobs/{job_id}").json()["status"] not in ("cancelled", "completed", "failed"):
            time.sleep(0.05)
    return {
        "samples": gets,
        "median_ms": round(statistics.median(samples_ms), 2),
        "p95_ms": round(p95(samples_ms), 2),
        "worker_busy_throughout": still_busy,
    }


def wait_end_to_end(client: httpx.Client, jobs: int) -> dict[str, float]:
    """Submit with ``Prefer: wait=10``; a job still running after 10 s (202) is polled to completion so the
    time is always submit -> completed. Reports how many finished inside the wait."""
    warm = client.post("/v1/drums", json={**SHORT_JOB, "seed": 999}, headers={"Prefer": "wait=60"})
    assert warm.json()["status"] == "completed", warm.text  # model loaded in the worker
    samples_s, within_wait, run_s = [], 0, []
    for seed in range(jobs):
        started = time.perf_counter()
        response = client.post("/v1/drums", json={**SHORT_JOB, "seed": seed}, headers={"Prefer": "wait=10"})
        job = response.json()
        while job["status"] not in ("completed", "failed", "cancelled"):
            time.sleep(0.02)
            job = client.get(f"/v1/jobs/{job['id']}").json()
        samples_s.append(time.perf_counter() - started)
        if job["status"] != "completed":
            raise SystemExit(f"job {job['id']} ended {job['status']}: {job['error']}")
        within_wait += response.status_code == 200
        run_s.append(job["run_duration_s"])
    return {
        "jobs": jobs,
        "median_s": round(statistics.median(samples_s), 3),
        "p95_s": round(p95(samples_s), 3),
        "min_s": round(min(samples_s), 3),
        "completed_within_wait": within_wait,
        "engine_run_median_s": round(statistics.median(run_s), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gets", type=int, default=300, help="GET requests for (a)")
    parser.add_argument("--jobs", type=int, default=20, help="4-bar jobs for (b)")
    args = parser.parse_args()
    info = describe_machine()
    print(f"machine: {info['cpu']}, {info['usable_cores']} usable / {info['logical_cores']} logical cores")
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-") as tmp:
        process, base = start_server(Path(tmp))
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                busy = busy_get_latency(client, args.gets)
                print(
                    f"(a) GET /v1/jobs/{{id}} while the worker is busy: median {busy['median_ms']} ms, "
                    f"p95 {busy['p95_ms']} ms over {busy['samples']} requests"
                )
                e2e = wait_end_to_end(client, args.jobs)
                print(
                    f"(b) 4-bar drums job with Prefer: wait=10: median {e2e['median_s']} s, "
                    f"p95 {e2e['p95_s']} s over {e2e['jobs']} jobs ({e2e['completed_within_wait']} inside the wait; "
                    f"engine run median {e2e['engine_run_median_s']} s)"
                )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "api_latency",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "get_job_while_busy": busy,
        "drums_4_bars_prefer_wait": e2e,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
