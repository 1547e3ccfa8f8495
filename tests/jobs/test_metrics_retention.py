"""The supervisor's periodic retention cleanup, the Prometheus collector, and PostgreSQL-portable DDL."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

from alembic import command
from jobs_helpers import check_duration_histograms, make_settings, wait_final, wait_until
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import create_engine

from cadenza.db.session import alembic_config
from cadenza.jobs import JobNotFound, JobsCollector, JobService, JobStatus


def _gone(service: JobService, job_id: object) -> bool:
    try:
        service.get(job_id)  # type: ignore[arg-type]
    except JobNotFound:
        return True
    return False


def test_supervisor_prunes_and_collector_reports(tmp_path: Path, start_pool) -> None:
    # retention of about 0.4 s, checked every 0.3 s by the supervisor thread
    settings = make_settings(tmp_path, retention_completed_h=0.4 / 3600, retention_failed_h=0, cleanup_interval_s=0.3)
    service = JobService(settings)
    pool = start_pool(settings, service)
    registry = CollectorRegistry()
    registry.register(JobsCollector(service, pool))

    done, _ = service.submit("testjob", {"duration_s": 0.1})
    failed, _ = service.submit("testjob", {"mode": "raise"})
    queued, _ = service.submit("testjob", {"tag": "never runs"}, priority=-1)
    service.cancel(queued.id)
    waiting, _ = service.submit("testretry", {}, priority=-5)
    assert wait_final(service, done.id).status is JobStatus.completed
    assert wait_final(service, failed.id).status is JobStatus.failed
    wait_final(service, waiting.id)

    text = generate_latest(registry).decode()
    assert 'cadenza_jobs{kind="testjob",status="completed"} 1.0' in text
    assert 'cadenza_jobs{kind="testjob",status="failed"} 1.0' in text
    assert 'cadenza_jobs{kind="testjob",status="cancelled"} 1.0' in text
    assert 'cadenza_jobs{kind="testretry",status="completed"} 1.0' in text
    assert "cadenza_queue_depth 0.0" in text
    assert 'cadenza_job_run_seconds_count{kind="testjob"} 2.0' in text  # the cancelled job never ran
    assert 'cadenza_job_queue_seconds_count{kind="testjob"} 2.0' in text  # of started jobs
    assert "cadenza_worker_restarts_total 0.0" in text
    assert 'cadenza_workers{state="alive"} 1.0' in text
    assert "cadenza_uptime_seconds" in text

    folder = service.files_dir / str(done.id)
    assert folder.exists()
    # Retention deletes the rows, then the files: wait for both.
    wait_until(
        lambda: _gone(service, done.id) and not folder.exists(),
        timeout_s=15,
        what="completed job and its files pruned by the supervisor",
    )
    # failed/cancelled retention is 0 = keep
    assert service.get(failed.id).status is JobStatus.failed
    assert service.get(queued.id).status is JobStatus.cancelled


def test_duration_histograms_aggregate_in_sql(tmp_path: Path) -> None:
    service = JobService(make_settings(tmp_path))
    check_duration_histograms(service)
    service.dispose()


def test_migrations_render_for_postgresql() -> None:
    """The migrations use no SQLite-only SQL: render them offline for PostgreSQL."""
    cfg = alembic_config(create_engine("sqlite://"))
    cfg.set_main_option("sqlalchemy.url", "postgresql://cadenza@localhost/cadenza")
    cfg.attributes.clear()
    out = io.StringIO()
    cfg.output_buffer = out
    with redirect_stdout(out):
        command.upgrade(cfg, "head", sql=True)
    sql = out.getvalue()
    assert "CREATE TABLE jobs" in sql and "id UUID NOT NULL" in sql
    assert "CONSTRAINT uq_jobs_idempotency UNIQUE (idempotency_scope, idempotency_key)" in sql
    assert "PRAGMA" not in sql and "AUTOINCREMENT" not in sql


def test_interrupted_uploads_are_swept_at_start_up_and_by_retention(tmp_path: Path) -> None:
    """Regression: a server killed mid-upload left ``uploads/*.part`` that nothing ever removed."""
    import os
    import time

    from cadenza.jobs.maintenance import Maintenance
    from cadenza.jobs.service import STALE_PART_S

    service = JobService(make_settings(tmp_path))
    old = service.staging_path(".wav")
    old.write_bytes(b"RIFF half a song")
    stale = time.time() - STALE_PART_S - 5
    os.utime(old, (stale, stale))
    fresh = service.staging_path(".flac")  # an upload still arriving: written to just now
    fresh.write_bytes(b"fLaC")
    maintenance = Maintenance(service)
    maintenance.start()  # start-up of a server or worker host
    maintenance.stop()
    assert not old.exists() and fresh.exists()
    os.utime(fresh, (stale, stale))
    assert service.prune()["partial_uploads"] == 1  # retention sweeps them too
    assert not fresh.exists()
