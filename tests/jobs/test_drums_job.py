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
        spec = registry.get_engine("drums")
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
