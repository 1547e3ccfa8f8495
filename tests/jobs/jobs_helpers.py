"""Helpers of the job-layer tests (importable: ``tests/jobs`` is put on ``sys.path`` by conftest)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cadenza.jobs import FINAL, JobService, JobView
from cadenza.settings import Settings

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GROOVE = (REPO / "../shared/data/groove").resolve()


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'cadenza.db'}",
        "files_dir": tmp_path / "files",
        "models_dir": tmp_path / "models",
        "workers": 1,
        "cleanup_interval_s": 3600,
        "worker_poll_interval_s": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


def wait_final(service: JobService, job_id: object, timeout_s: float = 30.0) -> JobView:
    deadline = time.monotonic() + timeout_s
    while True:
        job = service.get(job_id)  # type: ignore[arg-type]
        if job.status in FINAL:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status} after {timeout_s} s: {job}")
        time.sleep(0.02)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def claim_all(database_url: str, out_path: str) -> int:
    """Claim jobs until none is left (run in several spawned processes by the claim-race test);
    appends the claimed ids to ``out_path``. Returns how many this process claimed."""
    import os

    from cadenza.db.session import make_engine
    from cadenza.jobs import store

    engine = make_engine(database_url)
    worker_id = store.worker_id_for(os.getpid())
    claimed = []
    while (job := store.claim_next(engine, worker_id)) is not None:
        claimed.append(str(job.id))
    with open(out_path, "a") as fh:
        fh.write("".join(f"{jid}\n" for jid in claimed))
    engine.dispose()
    return len(claimed)
