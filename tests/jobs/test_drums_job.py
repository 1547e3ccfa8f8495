"""A real drums job through the worker pool (the engine built in ``cadenza.engines.drums``)."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest
from jobs_helpers import make_settings, wait_final

from cadenza.engines import registry
from cadenza.jobs import JobService, JobStatus


def test_drums_job_runs_in_a_worker_and_is_deterministic(tmp_path: Path, start_pool) -> None:
    try:
        spec = registry.for_plugins().get("drums")
    except ImportError as exc:  # pragma: no cover - the engine is part of the package
        pytest.fail(f"drums engine not importable: {exc}")
    settings = make_settings(tmp_path, workers=1)
    service = JobService(settings)
    start_pool(settings, service)
    request = spec.request_model.model_validate({"producer_style": "J Dilla", "bars": 2, "tempo": 90, "seed": 11})
    params = request.model_dump(mode="json")
    first, _ = service.submit("drums", params)
    second, _ = service.submit("drums", params)
    jobs = [wait_final(service, j.id, timeout_s=120) for j in (first, second)]
    for job in jobs:
        assert job.status is JobStatus.completed, job.error
        names = {o.name for o in job.outputs}
        assert "groove.mid" in names
        _, midi_path = service.output_file(job.id, None, "groove.mid")
        midi = mido.MidiFile(midi_path)
        notes = [m for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0]
        assert notes and all(m.channel == 9 for m in notes)  # General MIDI percussion channel
        progress = [e for e in service.events(job.id) if e.type == "progress"]
        assert progress, "the engine reported progress through the job layer"
    # same request + seed -> same bytes, also when the second run reuses the worker's cached model
    assert {o.name: o.sha256 for o in jobs[0].outputs} == {o.name: o.sha256 for o in jobs[1].outputs}


def test_worker_killed_from_outside_during_a_real_drums_job(tmp_path: Path, start_pool) -> None:
    """SIGKILL the worker process mid-job, as the kernel's OOM killer would: the drums job (its kind
    allows one retry) runs again on the replacement worker, completes, and the next job completes too."""
    import os
    import signal

    from jobs_helpers import wait_until

    settings = make_settings(tmp_path, workers=1)
    service = JobService(settings)
    pool = start_pool(settings, service)
    # 32 bars with three audio previews: long enough (about a second or more) to be killed mid-run
    long_job, _ = service.submit(
        "drums",
        {"producer_style": "Questlove", "bars": 32, "tempo": 60, "seed": 5, "formats": ["midi", "wav", "flac", "mp3"]},
    )
    next_job, _ = service.submit("drums", {"producer_style": "J Dilla", "bars": 2, "tempo": 90, "seed": 1})

    def running_worker_pid() -> int | None:
        job = service.get(long_job.id)
        if job.status.value != "processing" or job.progress <= 0:
            return None
        started = [e for e in service.events(long_job.id) if e.data.get("status") == "processing"]
        return int(started[-1].data["worker"].rsplit(":", 1)[1]) if started else None

    wait_until(lambda: running_worker_pid() is not None, timeout_s=60, what="the drums job to start")
    os.kill(running_worker_pid(), signal.SIGKILL)

    retried = wait_final(service, long_job.id, timeout_s=180)
    assert retried.status is JobStatus.completed, retried.error
    assert retried.attempts == 2
    assert {"groove.mid", "groove.wav", "groove.flac", "groove.mp3"} <= {o.name for o in retried.outputs}
    assert wait_final(service, next_job.id, timeout_s=60).status is JobStatus.completed
    assert pool.status()["restarts"] >= 1
