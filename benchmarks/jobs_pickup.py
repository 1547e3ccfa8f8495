"""Job-layer benchmark: how fast an idle worker picks up a submitted job.

Pick-up latency = ``started_at - created_at`` of 1-bar drums jobs submitted one at a time to an idle
worker, (a) of a same-process ``WorkerPool`` (woken by ``submit``) and (b) of a pool with its own
``JobService`` (as ``cadenza worker`` in another process: it finds jobs by polling the database every
``worker_poll_interval_s``). Median and p95 over ``--jobs``.

Prints the machine and writes ``benchmarks/results/jobs_pickup.json``.

    .venv/bin/python benchmarks/jobs_pickup.py [--jobs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _machine import describe_machine, write_results

from cadenza.jobs import FINAL, JobService, WorkerPool
from cadenza.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "jobs_pickup.json"
JOB = {"producer_style": "J Dilla", "bars": 1, "tempo": 90, "seed": 1}


def wait_final(service: JobService, job_id: object) -> None:
    while service.get(job_id).status not in FINAL:  # type: ignore[arg-type]
        time.sleep(0.005)


def pickups(service: JobService, n: int) -> list[float]:
    values = []
    for _ in range(n):
        time.sleep(0.3)  # the worker is idle, waiting for work
        job, _ = service.submit("drums", JOB)
        wait_final(service, job.id)
        done = service.get(job.id)
        assert done.status.value == "completed", done.error
        values.append(done.queue_duration_s * 1000)
    return values


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"median_ms": round(statistics.median(values), 2), "p95_ms": round(values[int(0.95 * (len(values) - 1))], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": describe_machine(),
        "date": datetime.now(UTC).isoformat(),
        "jobs": args.jobs,
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/db.sqlite", files_dir=Path(tmp) / "files", workers=1)
        service = JobService(settings)
        pool = WorkerPool(settings, service)
        pool.start()
        pickups(service, 2)  # warm-up: worker start, model load
        results["same_process_wakeup"] = summary(pickups(service, args.jobs))
        pool.stop()

        remote = WorkerPool(settings)  # its own JobService: learns of jobs only by polling the database
        remote.start()
        pickups(service, 2)
        polled = summary(pickups(service, args.jobs))
        results["db_poll"] = {**polled, "poll_interval_s": settings.worker_poll_interval_s}
        remote.stop()
    print(json.dumps(results, indent=2))
    write_results(RESULTS, results)


if __name__ == "__main__":
    main()
