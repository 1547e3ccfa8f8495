"""Helpers of the job-layer tests (importable: ``tests/jobs`` is put on ``sys.path`` by conftest)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cadenza.jobs import FINAL, JobService, JobView
from cadenza.jobs.metrics import duration_histogram
from cadenza.settings import Settings

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GROOVE = (REPO / "../shared/data/groove").resolve()
TEST_PLUGINS = ["jobs_test_engine", "jobs_test_engine_retry"]
"""The job-layer test engines (kinds ``testjob``, ``testretry``), registered through the ``plugins`` setting."""


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'cadenza.db'}",
        "files_dir": tmp_path / "files",
        "models_dir": tmp_path / "models",
        "workers": 1,
        "cleanup_interval_s": 3600,
        "worker_poll_interval_s": 0.2,
        "plugins": TEST_PLUGINS,
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


def wait_until(
    predicate: Callable[[], bool],
    timeout_s: float = 20.0,
    what: str = "condition",
    state: Callable[[], object] | None = None,
) -> None:
    """Wait until ``predicate()`` holds; on time-out, the message names ``what`` and ``state()`` then."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f"; state: {state()}" if state else ""))
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


def check_duration_histograms(service: JobService) -> None:
    """Give three jobs known timestamps and check the SQL-aggregated histograms against them
    (shared by the SQLite and PostgreSQL tests: the seconds arithmetic is per dialect)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from cadenza.db.models import Job
    from cadenza.db.session import write_tx

    t0 = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)
    # (queue_s, run_s, status); the last job was cancelled while queued: no start, in neither histogram
    shapes = [(0.005, 0.3, "completed"), (2.0, 4.0, "failed"), (40.0, 700.25, "completed"), (None, None, "cancelled")]
    for i, (queue_s, run_s, status) in enumerate(shapes):
        job, _ = service.submit("testjob", {"tag": f"hist{i}"})
        started = None if queue_s is None else t0 + timedelta(seconds=queue_s)
        completed = t0 + timedelta(seconds=1) if started is None else started + timedelta(seconds=run_s)
        with write_tx(service.engine) as session:
            session.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(status=status, created_at=t0, started_at=started, completed_at=completed)
            )
        view = service.get(job.id)
        assert view.queue_duration_s == (queue_s if queue_s is not None else 1.0)
    runs = duration_histogram(service.engine, "started_at", "completed_at", (0.25, 0.5, 5.0, 600.0))
    cumulative, sum_s, count = runs["testjob"]
    assert cumulative == [0, 1, 2, 2] and count == 3 and abs(sum_s - 704.55) < 0.01
    waits = duration_histogram(service.engine, "created_at", "started_at", (0.01, 1.0, 60.0))
    cumulative, sum_s, count = waits["testjob"]
    assert cumulative == [1, 1, 3] and count == 3 and abs(sum_s - 42.005) < 0.01
    assert duration_histogram(service.engine, "created_at", "started_at", (1.0,)).keys() == {"testjob"}
