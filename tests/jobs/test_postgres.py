"""The job layer on a real PostgreSQL server (``pgserver`` ships the binaries in a wheel; ``psycopg``
is the driver): migrations, the ``FOR UPDATE SKIP LOCKED`` claim across processes, and a worker pool.
Skipped when either package is missing (they are in the ``test`` extra)."""

from __future__ import annotations

import multiprocessing
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobs_helpers import check_duration_histograms, claim_all, make_settings, wait_final

from cadenza.jobs import IdempotencyConflict, JobService, JobStatus

pgserver = pytest.importorskip("pgserver")
psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def pg_server() -> Iterator[Path]:
    """A PostgreSQL server on a Unix socket in a new folder under the system temp dir (not pytest's
    0700 one: as root, pgserver runs postgres as an unprivileged user), deleted afterwards."""
    folder = Path(tempfile.gettempdir()) / f"cadenza-pg-{uuid.uuid4().hex[:8]}"
    server = pgserver.get_server(str(folder), cleanup_mode="delete")
    yield folder
    server.cleanup()


@pytest.fixture
def pg_url(pg_server: Path) -> str:
    """A fresh database for one test."""
    name = "cadenza_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"host={pg_server} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres:@/{name}?host={pg_server}"


def test_service_and_pool_on_postgresql(pg_url: str, tmp_path: Path, start_pool) -> None:
    settings = make_settings(tmp_path, database_url=pg_url, workers=2)
    service = JobService(settings)
    JobService(settings).dispose()  # migrations are idempotent here too
    assert service.engine.dialect.name == "postgresql"
    pool = start_pool(settings, service)
    jobs = [service.submit("testjob", {"tag": str(i)}, priority=i % 3, idempotency_key=f"k{i}")[0] for i in range(6)]
    again, created = service.submit("testjob", {"tag": "0"}, priority=0, idempotency_key="k0")
    assert not created and again.id == jobs[0].id
    with pytest.raises(IdempotencyConflict):
        service.submit("testjob", {"tag": "other"}, idempotency_key="k0")
    for job in jobs:
        done = wait_final(service, job.id)
        assert done.status is JobStatus.completed and done.outputs[0].name == "result.txt"
        assert [e.sequence for e in service.events(job.id)] == list(range(1, done.sequence + 1))

    running, _ = service.submit("testjob", {"duration_s": 30})
    crashed, _ = service.submit("testjob", {"mode": "kill", "duration_s": 0.1})
    wait_final(service, crashed.id)
    assert service.get(crashed.id).error.type == "WorkerCrashed"
    service.cancel(running.id)
    assert wait_final(service, running.id).status is JobStatus.cancelled

    first, cursor = service.list(limit=4)
    rest, end = service.list(limit=4, cursor=cursor)
    assert end is None and len({j.id for j in first + rest}) == 8
    secret, key = service.keys.create("pg")
    assert service.keys.verify(secret) == key
    assert pool.status()["restarts"] >= 1
    service.dispose()


def test_claims_race_free_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=pg_url)
    service = JobService(settings)
    ids = {str(service.submit("testjob", {"tag": str(i)})[0].id) for i in range(40)}
    out = tmp_path / "claims.txt"
    with multiprocessing.get_context("spawn").Pool(4) as procs:
        counts = procs.starmap(claim_all, [(pg_url, str(out))] * 4)
    claimed = out.read_text().split()
    assert sum(counts) == 40 and len(claimed) == 40 and set(claimed) == ids
    service.dispose()


def test_duration_histograms_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    service = JobService(make_settings(tmp_path, database_url=pg_url))
    check_duration_histograms(service)
    service.dispose()
