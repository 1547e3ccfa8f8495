"""WorkerPool with real spawned worker processes and the test engine: the life of a job, errors,
cancel, timeouts, crashes, ordering, drain, restart recovery, claim races, model commands."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from jobs_helpers import HERE, REPO, claim_all, make_settings, wait_final, wait_until

from cadenza.jobs import JobService, JobStatus, StagedInput
from cadenza.jobs import pool as pool_module


def test_job_life_events_outputs_and_model_cache(settings, service: JobService, start_pool, tmp_path: Path) -> None:
    pool = start_pool(settings, service)
    job, _ = service.submit("testjob", {"duration_s": 0.5, "step_s": 0.005, "payload": "groove"})
    done = wait_final(service, job.id)
    assert done.status is JobStatus.completed, done.error
    assert done.progress == 100 and done.attempts == 1 and done.error is None
    assert done.run_duration_s is not None and done.run_duration_s >= 0.5 and done.queue_duration_s is not None
    assert done.result == {"runs_in_process": 1, "pid": done.result["pid"], "input": None, "warnings": ["test warning"]}

    [out] = done.outputs
    view, path = service.output_file(job.id, None, "result.txt")
    assert path.read_text() == "groove" and view == out
    assert (out.name, out.media_type, out.size_bytes, out.metadata) == ("result.txt", "text/plain", 6, {"chars": 6})
    assert out.sha256 == hashlib.sha256(b"groove").hexdigest()
    assert sorted(p.name for p in path.parent.iterdir()) == ["result.txt"]

    events = service.events(job.id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1)) and events[-1].sequence == done.sequence
    assert [e.data["status"] for e in events if e.type == "status"] == ["queued", "processing", "completed"]
    progress = [e.data for e in events if e.type == "progress"]
    assert progress[0] == {"progress": 0.0, "stage": "start"} and progress[-1] == {"progress": 100.0, "stage": "done"}
    assert 3 <= len(progress) <= 10  # ~100 calls throttled to at most ~10 events per second
    assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)
    assert events[-2].type == "output" and events[-2].data == {
        "name": "result.txt",
        "media_type": "text/plain",
        "size_bytes": 6,
        "sha256": out.sha256,
    }
    assert service.events(job.id, after_sequence=done.sequence - 1) == events[-1:]

    # the same worker process keeps its cache between jobs; an upload reaches the engine as input_path
    staged = tmp_path / "take.txt"
    staged.write_text("uploaded")
    second, _ = service.submit("testjob", {}, inputs={"file": StagedInput(staged)})
    second = wait_final(service, second.id)
    assert second.result["runs_in_process"] == 2 and second.result["pid"] == done.result["pid"]
    assert second.result["input"] == "uploaded"
    wait_until(lambda: pool.status()["busy"] == 0, what="worker idle")  # set just after the final commit
    assert pool.status() == {"workers": 1, "alive": 1, "busy": 0, "restarts": 0}


def test_engine_errors_fail_the_job_and_remove_partial_files(settings, service: JobService, start_pool) -> None:
    start_pool(settings, service)
    cases = {
        "raise": ("RuntimeError", "engine exploded"),
        "input_error": ("EngineInputError", "the requested thing cannot be made"),
        "bad_output": ("RuntimeError", "invalid or duplicate output name"),
    }
    jobs = {mode: service.submit("testjob", {"mode": mode, "duration_s": 0.05})[0] for mode in cases}
    invalid, _ = service.submit("testjob", {"mode": "bogus"})  # params re-validated in the worker
    for mode, (error_type, message) in cases.items():
        failed = wait_final(service, jobs[mode].id)
        assert failed.status is JobStatus.failed and failed.error is not None
        assert failed.error.type == error_type and message in failed.error.message
        assert failed.outputs == [] and failed.result is None
        # the worker removes a failed job's files right after writing its final status: wait for it
        folder = service.files_dir / str(failed.id)
        wait_until(lambda folder=folder: not folder.exists(), what="failed job's files removed")
        assert not (service.files_dir / str(failed.id)).exists()
        assert service.events(failed.id)[-1].data["error"] == failed.error.model_dump()
    bad = wait_final(service, invalid.id)
    assert bad.status is JobStatus.failed and bad.error.type == "ValidationError" and "mode" in bad.error.message
    ok, _ = service.submit("testjob", {})
    assert wait_final(service, ok.id).status is JobStatus.completed


def test_cancel_and_delete_processing_and_queued_jobs(settings, service: JobService, start_pool) -> None:
    start_pool(settings, service)
    running, _ = service.submit("testjob", {"duration_s": 30})
    waiting, _ = service.submit("testjob", {"tag": "waits"})
    wait_until(lambda: service.get(running.id).progress > 0, what="running job reports progress")
    folder = service.files_dir / str(running.id)
    assert (folder / "attempt-1" / "partial.bin").exists()

    queued_cancel = service.cancel(waiting.id)  # queued: at once
    assert queued_cancel.status is JobStatus.cancelled

    t0 = time.monotonic()
    flagged = service.cancel(running.id)
    assert flagged.status is JobStatus.processing
    cancelled = wait_final(service, running.id, timeout_s=10)
    stop_s = time.monotonic() - t0
    assert cancelled.status is JobStatus.cancelled and cancelled.outputs == []
    assert stop_s < 5, f"processing job took {stop_s:.2f} s to stop after cancel"
    wait_until(lambda: not folder.exists(), what="cancelled job's files removed")  # right after the final status
    assert not folder.exists()
    statuses = [e.data["status"] for e in service.events(running.id) if e.type == "status"]
    assert statuses == ["queued", "processing", "cancelled"]

    doomed, _ = service.submit("testjob", {"duration_s": 30})
    wait_until(lambda: service.get(doomed.id).progress > 0, what="second job running")
    service.delete(doomed.id)
    wait_until(lambda: not (service.files_dir / str(doomed.id)).exists(), what="deleted job's files removed")
    after, _ = service.submit("testjob", {})  # the worker let go of the deleted job and goes on
    assert wait_final(service, after.id).status is JobStatus.completed


def test_stuck_cancel_and_timeout_kill_the_worker(tmp_path: Path, start_pool, monkeypatch) -> None:
    monkeypatch.setattr(pool_module, "CANCEL_GRACE_S", 0.3)
    settings = make_settings(tmp_path, job_timeout_s=2.0)
    service = JobService(settings)
    pool = start_pool(settings, service)
    deaf, _ = service.submit("testjob", {"mode": "no_progress", "duration_s": 30})
    wait_until(lambda: service.get(deaf.id).stage == "start", what="deaf job past its last progress call")
    service.cancel(deaf.id)
    cancelled = wait_final(service, deaf.id, timeout_s=10)
    assert cancelled.status is JobStatus.cancelled
    wait_until(lambda: not (service.files_dir / str(deaf.id)).exists(), what="cancelled job's files removed")
    assert not (service.files_dir / str(deaf.id)).exists()

    slow, _ = service.submit("testjob", {"mode": "no_progress", "duration_s": 30})
    failed = wait_final(service, slow.id, timeout_s=20)
    assert failed.status is JobStatus.failed and failed.error.type == "JobTimeout"
    assert "job timeout of 2 s" in failed.error.message
    ok, _ = service.submit("testjob", {})
    assert wait_final(service, ok.id, timeout_s=20).status is JobStatus.completed
    assert pool.status()["restarts"] == 2 and pool.status()["alive"] == 1


def test_worker_crash_fails_or_retries_and_pool_recovers(settings, service: JobService, start_pool, tmp_path) -> None:
    pool = start_pool(settings, service)
    killed, _ = service.submit("testjob", {"mode": "kill", "duration_s": 0.2})
    exited, _ = service.submit("testjob", {"mode": "exit", "duration_s": 0.2})
    after, _ = service.submit("testjob", {"payload": "still here"})
    first = wait_final(service, killed.id)
    assert first.status is JobStatus.failed and first.error.type == "WorkerCrashed"
    assert first.error.message == "worker process exited with code -9 while running this job"
    second = wait_final(service, exited.id)
    assert second.error.message == "worker process exited with code 3 while running this job"
    wait_until(lambda: not (service.files_dir / str(killed.id)).exists(), what="crashed job's files removed")
    assert not (service.files_dir / str(killed.id)).exists()
    assert wait_final(service, after.id).status is JobStatus.completed
    assert pool.status()["restarts"] == 2

    # an engine with retry_on_crash: one crash is retried; crashing twice fails
    retried, _ = service.submit("testretry", {"crash_marker": str(tmp_path / "marker")})
    done = wait_final(service, retried.id)
    assert done.status is JobStatus.completed and done.attempts == 2
    statuses = [e.data["status"] for e in service.events(retried.id) if e.type == "status"]
    assert statuses == ["queued", "processing", "queued", "processing", "completed"]
    always, _ = service.submit("testretry", {"mode": "kill", "duration_s": 0.1})
    gave_up = wait_final(service, always.id)
    assert gave_up.status is JobStatus.failed and gave_up.attempts == 2 and gave_up.error.type == "WorkerCrashed"
    wait_until(lambda: pool.status()["restarts"] == 5, what="fifth restart counted")  # counted after the job is failed
    wait_until(lambda: pool.status()["alive"] == 1, what="replacement worker alive")


def test_more_jobs_than_workers_run_by_priority_then_fifo(tmp_path: Path, start_pool) -> None:
    settings = make_settings(tmp_path, workers=2)
    service = JobService(settings)
    pool = start_pool(settings, service)
    blockers = [service.submit("testjob", {"duration_s": 1.0, "tag": f"b{i}"})[0] for i in range(2)]
    wait_until(lambda: all(service.get(b.id).status is JobStatus.processing for b in blockers), what="blockers")
    priorities = [0, 5, 0, 5, 1, 0, 9, 1]
    jobs = [service.submit("testjob", {"tag": f"j{i}"}, priority=p)[0] for i, p in enumerate(priorities)]
    assert service.queue_depth() == len(jobs) and pool.status()["busy"] == 2
    finished = [wait_final(service, j.id) for j in jobs]
    assert all(j.status is JobStatus.completed for j in finished)
    claim_order = [j.params["tag"] for j in sorted(finished, key=lambda j: j.started_at)]
    expected = [f"j{i}" for i, _ in sorted(enumerate(priorities), key=lambda ip: (-ip[1], ip[0]))]
    assert claim_order == expected


def test_drain_lets_running_jobs_finish_then_requeues_the_rest(settings, service: JobService, start_pool) -> None:
    pool = start_pool(settings, service)
    job, _ = service.submit("testjob", {"duration_s": 0.8})
    wait_until(lambda: service.get(job.id).status is JobStatus.processing, what="job running")
    pool.drain(timeout_s=20)
    assert service.get(job.id).status is JobStatus.completed
    assert pool.status()["alive"] == 0

    pool = start_pool(settings, service)
    long, _ = service.submit("testjob", {"duration_s": 2.5})
    later, _ = service.submit("testjob", {"tag": "later"})
    wait_until(lambda: service.get(long.id).progress > 0, what="long job running")
    pool.drain(timeout_s=0.3)
    requeued = service.get(long.id)
    assert requeued.status is JobStatus.queued and requeued.attempts == 0  # the interrupted attempt is not counted
    assert service.get(later.id).status is JobStatus.queued  # nothing new was claimed while draining
    assert not list((service.files_dir / str(long.id)).glob("attempt-*/partial.bin"))

    start_pool(settings, service)
    assert wait_final(service, long.id).status is JobStatus.completed
    assert wait_final(service, later.id).status is JobStatus.completed


HARD_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {here!r})
    from jobs_helpers import make_settings
    from cadenza.jobs import JobService, WorkerPool
    from pathlib import Path

    if __name__ == "__main__":
        settings = make_settings(Path({tmp!r}), workers=2)
        service = JobService(settings)
        WorkerPool(settings, service).start()
        a, _ = service.submit("testretry", {{"duration_s": 2.0, "tag": "a"}})
        b, _ = service.submit("testjob", {{"duration_s": 30, "tag": "b"}})
        c, _ = service.submit("testjob", {{"tag": "c"}})
        while not (service.get(a.id).progress > 0 and service.get(b.id).progress > 0):
            time.sleep(0.02)
        print("IDS", a.id, b.id, c.id, flush=True)
        time.sleep(60)
    """
)


def test_restart_after_hard_kill_loses_no_job(tmp_path: Path, start_pool) -> None:
    script = HARD_KILL_SCRIPT.format(here=str(HERE), tmp=str(tmp_path))
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=REPO, env=env, start_new_session=True, text=True
    )
    try:
        line = ""
        while not line.startswith("IDS "):
            line = proc.stdout.readline()
            assert line, "the server subprocess ended early"
        a, b, c = line.split()[1:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the server and its workers die without any clean-up
        proc.wait()
    time.sleep(0.2)
    settings = make_settings(tmp_path, workers=1)
    service = JobService(settings)
    assert {service.get(a).status, service.get(b).status} == {JobStatus.processing}
    assert service.get(c).status is JobStatus.queued

    start_pool(settings, service)  # recovery: a (retry allowed) re-queued, b failed, c survives
    lost = service.get(b)
    assert lost.status is JobStatus.failed and lost.error.type == "WorkerLost"
    assert not (service.files_dir / b).exists()
    for job_id in (a, c):
        assert wait_final(service, job_id, timeout_s=30).status is JobStatus.completed
    assert service.get(a).attempts == 2 and service.queue_depth() == 0


def test_claims_race_free_across_processes(settings, service: JobService, tmp_path: Path) -> None:
    ids = {str(service.submit("testjob", {"tag": str(i)})[0].id) for i in range(60)}
    out = tmp_path / "claims.txt"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as procs:
        counts = procs.starmap(claim_all, [(settings.database_url, str(out))] * 4)
    claimed = out.read_text().split()
    assert sum(counts) == 60 and len(claimed) == 60 and set(claimed) == ids  # each exactly once
    for job_id in ids:
        job = service.get(job_id)
        assert job.status is JobStatus.processing and job.attempts == 1 and job.sequence == 2


def test_two_pools_on_one_database_never_run_a_job_twice(tmp_path: Path, start_pool) -> None:
    settings = make_settings(tmp_path, workers=2, worker_poll_interval_s=0.05)
    first, second = JobService(settings), JobService(settings)  # two servers sharing the database
    start_pool(settings, first)
    start_pool(settings, second)
    log = tmp_path / "runs.log"
    # each job lasts 0.2 s, so one worker cannot finish every job before the others poll (a loaded run saw that)
    jobs = [first.submit("testjob", {"tag": f"t{i}", "log_path": str(log), "duration_s": 0.2})[0] for i in range(24)]
    assert all(wait_final(first, j.id).status is JobStatus.completed for j in jobs)
    runs = [line.split() for line in log.read_text().splitlines()]
    assert sorted(tag for tag, _ in runs) == sorted(f"t{i}" for i in range(24))
    assert len({pid for _, pid in runs}) >= 2  # the work was shared


def test_model_load_and_unload_in_workers(tmp_path: Path, start_pool) -> None:
    settings = make_settings(tmp_path, workers=2)
    pool = start_pool(settings)
    assert pool.loaded_models() == set()
    assert pool.request_model("test-model", "load") == 2  # waits for the idle workers' answers
    assert pool.loaded_models() == {"test-model"}
    assert pool.request_model("test-model", "unload") == 2
    assert pool.loaded_models() == set()
    with pytest.raises(KeyError):
        pool.request_model("no-such-model", "load")
    with pytest.raises(ValueError):
        pool.request_model("test-model", "explode")


def _worker_pid(service: JobService, job_id: object) -> int:
    from cadenza.db.models import Job

    with service.engine.connect() as conn:
        worker_id = conn.execute(Job.__table__.select().where(Job.id == job_id)).mappings().one()["worker_id"]
    return int(worker_id.rsplit(":", 1)[1])


def _job_state(service: JobService, job_id: object) -> dict[str, object]:
    """What a time-out message should show: the job's status, attempts, worker and last events."""
    from cadenza.db.models import Job

    with service.engine.connect() as conn:
        row = conn.execute(Job.__table__.select().where(Job.id == job_id)).mappings().one()
    events = [(e.type, e.data) for e in service.events(job_id)][-4:]  # type: ignore[arg-type]
    return {k: row[k] for k in ("status", "attempts", "worker_id", "lease_expires_at")} | {"events": events}


def _stop_outside_a_write(pid: int, database: Path) -> None:
    """SIGSTOP ``pid`` at a moment it holds no SQLite write lock (a process frozen inside a write
    transaction blocks every writer until it resumes: SQLite's nature, not what this test is about)."""
    import sqlite3

    while True:
        os.kill(pid, signal.SIGSTOP)
        conn = sqlite3.connect(database, timeout=5.0)  # any other writer finishes within 5 s
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.rollback()
            return
        except sqlite3.OperationalError:  # locked: by the stopped worker; let it finish and try again
            os.kill(pid, signal.SIGCONT)
        finally:
            conn.close()


def test_a_stalled_worker_waking_up_leaves_the_new_attempt_alone(tmp_path: Path, start_pool) -> None:
    """Regression (soak, SIGSTOP): a worker paused past its lease woke up after another worker took the job
    over and deleted the job's folder, so the new attempt failed or completed with missing files."""
    settings = make_settings(tmp_path, workers=2, job_lease_s=1.0)
    service = JobService(settings)
    start_pool(settings, service)
    job, _ = service.submit("testretry", {"duration_s": 6.0, "step_s": 0.05, "payload": "kept"})
    wait_until(lambda: service.get(job.id).status is JobStatus.processing, timeout_s=120, what="processing")
    stalled = _worker_pid(service, job.id)
    first_attempt = tmp_path / "files" / str(job.id) / "attempt-1"
    _stop_outside_a_write(stalled, tmp_path / "cadenza.db")
    try:
        wait_until(
            lambda: service.get(job.id).attempts == 2 and service.get(job.id).status is JobStatus.processing,
            timeout_s=120,
            what="the job taken over by the other worker",
            state=lambda: _job_state(service, job.id),
        )
        assert _worker_pid(service, job.id) != stalled
    finally:
        os.kill(stalled, signal.SIGCONT)  # wakes up, notices at its next progress call, cleans its attempt
    wait_until(
        lambda: not first_attempt.exists(),
        timeout_s=120,
        what="the stalled attempt's folder removed",
        state=lambda: _job_state(service, job.id),
    )
    done = wait_final(service, job.id, timeout_s=120)
    assert done.status is JobStatus.completed, done.error
    _, path = service.output_file(job.id, None, "result.txt")
    assert path.read_text() == "kept" and path.parent.name == "attempt-2"


def test_a_stalled_worker_of_a_job_failed_meanwhile_leaves_nothing_behind(tmp_path: Path, start_pool) -> None:
    """Regression (soak): the lease sweep failed the job and removed its files; the worker woke up, wrote
    again, then removed only its attempt and left an empty job folder behind."""
    settings = make_settings(tmp_path, workers=1, job_lease_s=1.0)
    service = JobService(settings)
    start_pool(settings, service)
    params = {"duration_s": 4.0, "step_s": 0.05, "rewrite_each_step": True}
    job, _ = service.submit("testjob", params)  # testjob is never retried
    wait_until(lambda: service.get(job.id).status is JobStatus.processing, timeout_s=120, what="processing")
    stalled = _worker_pid(service, job.id)
    _stop_outside_a_write(stalled, tmp_path / "cadenza.db")
    try:
        failed = wait_final(service, job.id, timeout_s=120)
        assert failed.status is JobStatus.failed and failed.error.type == "WorkerLost"
    finally:
        os.kill(stalled, signal.SIGCONT)
    folder = tmp_path / "files" / str(job.id)
    wait_until(
        lambda: not folder.exists(),
        timeout_s=120,
        what="the failed job's folder removed",
        state=lambda: (_job_state(service, job.id), sorted(str(p) for p in folder.rglob("*"))),
    )
    after, _ = service.submit("testjob", {})  # the woken worker goes on with the next job
    assert wait_final(service, after.id, timeout_s=120).status is JobStatus.completed


def test_a_waiter_wakes_when_the_worker_reports_the_job_changed(
    settings, service: JobService, start_pool, monkeypatch
) -> None:
    """``Prefer: wait`` answered up to a poll interval after the job finished; now the worker tells the pool, the
    pool tells the service, and the waiter re-reads at once. With polling pushed out to 10 minutes, only that
    notification can end these waits before their 5-minute timeout."""
    import asyncio

    from cadenza.jobs import service as service_module

    monkeypatch.setattr(service_module, "WAIT_POLL_MIN_S", 600.0)
    monkeypatch.setattr(service_module, "WAIT_POLL_MAX_S", 600.0)
    start_pool(settings, service)
    job, _ = service.submit("testjob", {"duration_s": 0.3, "step_s": 0.01, "payload": "x"})

    async def waits() -> tuple:
        started = await service.wait(job.id, timeout_s=300, until_status_change=True)
        done = await service.wait(job.id, timeout_s=300)
        return started, done

    started, done = asyncio.run(waits())
    assert started.status in (JobStatus.processing, JobStatus.completed)
    assert done.status is JobStatus.completed
