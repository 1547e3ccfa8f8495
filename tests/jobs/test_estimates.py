"""queue_position and eta_s of queued and processing jobs, from the run times of recent jobs."""

from __future__ import annotations

from pathlib import Path

from jobs_helpers import make_settings, wait_final, wait_until

from cadenza.jobs import JobService, JobStatus


def test_queue_position_and_eta_follow_the_claim_order_and_recent_runs(tmp_path: Path, start_pool) -> None:
    settings = make_settings(tmp_path, workers=1)
    service = JobService(settings)
    first, _ = service.submit("testjob", {"duration_s": 0.0})
    assert (first.queue_position, first.eta_s) == (1, None)  # no history of this kind yet
    pool = start_pool(settings, service)
    for _ in range(3):  # a history: three runs of about 0.3 s
        job, _ = service.submit("testjob", {"duration_s": 0.3})
        assert wait_final(service, job.id, timeout_s=120).status is JobStatus.completed
    done = service.get(first.id)
    assert (done.queue_position, done.eta_s) == (None, None)  # final jobs have neither
    pool.stop()  # nothing runs from here: the next jobs stay queued

    low, _ = service.submit("testjob", {"duration_s": 0.3}, priority=-1)
    a, _ = service.submit("testjob", {"duration_s": 0.3})
    b, _ = service.submit("testjob", {"duration_s": 0.3})
    urgent, _ = service.submit("testjob", {"duration_s": 0.3}, priority=5)
    views = {v.id: v for v in service.list(status=JobStatus.queued)[0]}
    positions = {job.id: views[job.id].queue_position for job in (urgent, a, b, low)}
    assert list(positions.values()) == [1, 2, 3, 4]
    assert service.get(b.id).queue_position == 3
    etas = [service.get(job.id).eta_s for job in (urgent, a, b, low)]
    assert all(eta is not None and eta > 0 for eta in etas) and etas == sorted(etas)
    assert etas[3] / etas[0] > 3.0  # four medians of work against one


def test_processing_eta_comes_from_the_jobs_own_pace(tmp_path: Path, start_pool) -> None:
    settings = make_settings(tmp_path, workers=1)
    service = JobService(settings)
    start_pool(settings, service)
    job, _ = service.submit("testjob", {"duration_s": 8.0})
    wait_until(lambda: service.get(job.id).progress >= 10.0, timeout_s=120, what="10 % progress")
    running = service.get(job.id)
    assert running.status is JobStatus.processing and running.queue_position is None
    assert running.eta_s is not None and 0.0 < running.eta_s < 60.0
    service.cancel(job.id)
