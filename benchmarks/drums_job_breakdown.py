"""Where a 4-bar drums job's time goes in the worker: the model against everything else, in one run.

Runs real jobs in this process (SQLite in a temporary folder, the real drums engine and ``run_job``, no HTTP):
each is submitted, claimed and run, and the stages below are timed by wrapping the functions that do them
(the wrappers only read the clock). Medians over ``--jobs`` jobs after 10 warm-up jobs; ratios to the model's
own time (``DrumModel.generate``) in the same run, since absolute times vary ~4× between machines.

    .venv/bin/python benchmarks/drums_job_breakdown.py [--jobs 60]

Writes ``benchmarks/results/drums_job_breakdown.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
from _machine import describe_machine, write_results

from cadenza.engines.drums import engine as drums_engine
from cadenza.engines.drums import model as drums_model
from cadenza.jobs import JobService, store
from cadenza.jobs import worker as job_worker
from cadenza.logging import configure_logging
from cadenza.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "drums_job_breakdown.json"
REQUEST = {"producer_style": "J Dilla", "bars": 4, "tempo": 90}  # the API benchmarks' short job
WARM_UP = 10
STAGES = {  # label: (owner, attribute)
    "model (DrumModel.generate)": (drums_model.DrumModel, "generate"),
    "arrange": (drums_engine, "arrange"),
    "humanize": (drums_engine, "humanize"),
    "pattern.json document": (drums_engine, "pattern_document"),
    "MIDI file (mido)": (drums_engine, "drum_midi_bytes"),
    "progress event write": (job_worker.JobProgress, "_write"),
    "output hashing": (job_worker, "_record_outputs"),
    "final transaction": (job_worker, "_finish"),
}


def _timed(fn: Callable, samples: list[float]) -> Callable:
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            samples.append((time.perf_counter() - start) * 1000.0)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    configure_logging(log_level="warning")  # as `cadenza serve` at that level: no per-job log lines
    samples: dict[str, list[float]] = defaultdict(list)
    for label, (owner, name) in STAGES.items():
        setattr(owner, name, _timed(getattr(owner, name), samples[label]))
    info = describe_machine()
    print(f"machine: {info}")
    with tempfile.TemporaryDirectory(prefix="cadenza-bench-") as tmp:
        folder = Path(tmp)
        settings = Settings(
            database_url=f"sqlite:///{folder / 'bench.db'}",
            files_dir=folder / "files",
            models_dir=folder / "models",
            log_level="warning",
        )
        service = JobService(settings)
        cache: dict = {}
        submit_ms, claim_ms, run_ms = [], [], []
        for seed in range(WARM_UP + args.jobs):
            start = time.perf_counter()
            service.submit("drums", {**REQUEST, "seed": seed})
            claimed_at = time.perf_counter()
            job = store.claim_next(service.engine, "bench:1", settings.job_lease_s)
            run_at = time.perf_counter()
            job_worker.run_job(service.engine, settings, job, "bench:1", cache)
            done = time.perf_counter()
            submit_ms.append((claimed_at - start) * 1000.0)
            claim_ms.append((run_at - claimed_at) * 1000.0)
            run_ms.append((done - run_at) * 1000.0)
        service.engine.dispose()

    def median(values: list[float]) -> float:
        return round(statistics.median(values[WARM_UP:]), 2)

    model_ms = median(samples["model (DrumModel.generate)"])
    stages = {label: median(values) for label, values in samples.items()}
    stages |= {"submit (insert, commit)": median(submit_ms), "claim": median(claim_ms)}
    run = median(run_ms)
    rows = {label: {"median_ms": ms, "ratio_to_model": round(ms / model_ms, 2)} for label, ms in stages.items()}
    for label, row in rows.items():
        print(f"{label:32s} {row['median_ms']:7.2f} ms  {row['ratio_to_model']:5.2f}× the model")
    print(f"{'run_job (all of the run)':32s} {run:7.2f} ms  {run / model_ms:5.2f}× the model")
    payload = {
        "benchmark": "drums_job_breakdown",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "request": REQUEST,
        "jobs": args.jobs,
        "stages": rows,
        "run_job_median_ms": run,
        "ratio_run_job_to_model": round(run / model_ms, 2),
        "machine": info,
    }
    write_results(RESULTS, payload)


if __name__ == "__main__":
    main()
