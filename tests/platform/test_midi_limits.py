"""Bounded cost for every MIDI input: hostile files are refused naming the limit they break, through the one
reader (``cadenza.music.midi_input``) and through the API's drums and melody inputs, and the memory one
MIDI input takes stays under 100 MB in the API's probe and in the worker's run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import platform_settings
from fastapi.testclient import TestClient
from midi_hostile import SHARED, hostile_midis, notes, smf

from cadenza.api.app import create_app
from cadenza.music.midi_input import MidiLimits, MidiRejected, first_bars, read_midi

HOSTILE = hostile_midis()
MEMORY_LIMIT_MB = 100


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_reader_refuses_each_hostile_file_naming_its_limit(name: str) -> None:
    data, limit = HOSTILE[name]
    with pytest.raises(MidiRejected) as info:
        read_midi(data, "seed_midi")
    assert info.value.limit == limit and f"(limit: {limit})" in str(info.value)
    assert str(info.value).startswith("seed_midi ")


def test_cut_and_lying_chunks_are_refused_without_a_limit() -> None:
    good = smf([notes(8, 240)])
    for cut in (5, 13, 20, len(good) - 1):
        with pytest.raises(MidiRejected, match="cannot be read as MIDI") as info:
            read_midi(good[:cut], "reference_midi")
        assert info.value.limit is None
    lying = good[:18] + (10_000).to_bytes(4, "big") + good[22:]  # the track declares more than the file holds
    with pytest.raises(MidiRejected, match="declares 10,000 bytes"):
        read_midi(lying, "reference_midi")


def test_first_bars_keep_only_what_is_asked_however_far_the_file_reaches() -> None:
    far = smf([notes(3, 2**20, length=10)], division=480)  # 3 notes, the last at tick 2^21 (4,369 quarters)
    score = read_midi(far, "reference_midi")
    assert score.end() > 2**21
    kept = first_bars(score, 16)
    assert sum(len(t.notes) for t in kept.tracks) == 1 and kept.end() < 16 * 1920
    with pytest.raises(MidiRejected, match="spans 4,369 quarter notes"):
        read_midi(far, "x", MidiLimits(max_span_quarters=4_000))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = platform_settings(tmp_path_factory.mktemp("midi-limits"), plugins=[], max_upload_bytes=4 * 1024 * 1024)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


ROUTES = {"drums": ("reference_midi", {"producer_style": "J Dilla", "bars": 2}), "melodies": ("seed_midi", {})}
MAX_BYTES = {"drums": 1024 * 1024, "melodies": 512 * 1024}  # max_reference_bytes, max_seed_bytes


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_hostile_files_get_a_problem_naming_the_limit_and_no_job(client: TestClient, route: str) -> None:
    name, params = ROUTES[route]
    for label, (data, limit) in HOSTILE.items():
        if route == "melodies" and label.startswith("sparse"):
            limit = "max_notes"  # a seed holds at most 2,000 notes (engines.melody.max_seed_notes)
        response = client.post(
            f"/v1/{route}", data={"params": json.dumps(params)}, files={name: (f"{label}.mid", data, "audio/midi")}
        )
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json"), (label, problem)
        if (
            len(data) > MAX_BYTES[route]
        ):  # the upload layer stops an oversized part before it is read: 413 with the size
            assert response.status_code == 413 and "bytes" in problem["detail"], (label, problem)
        else:
            assert response.status_code == 422 and f"(limit: {limit})" in problem["detail"], (label, problem)
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_a_ragged_seed_is_refused_at_submit_or_completes(client: TestClient) -> None:
    """repro_seed.mid (17 eighth notes in 4/4: 2 1/8 bars) with ``bars=3`` was accepted and then always failed."""
    seed = (SHARED / "repro_seed.mid").read_bytes()
    refused = client.post(
        "/v1/melodies", data={"params": json.dumps({"bars": 3})}, files={"seed_midi": ("seed.mid", seed, "audio/midi")}
    )
    assert refused.status_code == 422 and "takes 3 bars of 4/4" in refused.json()["detail"], refused.text
    accepted = client.post(
        "/v1/melodies",
        data={"params": json.dumps({"bars": 4, "seed": 2})},
        files={"seed_midi": ("seed.mid", seed, "audio/midi")},
        headers={"Prefer": "wait=120"},
    )
    job = accepted.json()
    while job["status"] not in ("completed", "failed", "cancelled"):  # a long-poll per request
        job = client.get(job["url"], headers={"Prefer": "wait=60"}).json()
    assert job["status"] == "completed", job


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from midi_hostile import hostile_midis, notes, smf, vlq
    from cadenza.engines.base import EngineInputError, RunContext, UploadRejected
    from cadenza.engines.drums import ENGINE as DRUMS
    from cadenza.engines.drums.engine import example_reference, probe_reference
    from cadenza.engines.melody.engine import probe_seed

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    folder = Path(sys.argv[2])
    files = {}
    for name, (data, _) in hostile_midis().items():
        files[name] = folder / f"{name}.mid"
        files[name].write_bytes(data)
    # The largest files the limits accept: 20,000 drum notes (the note limit) spread over 16,000 quarters
    # (under the span limit), one of them 1 MiB (the drums size limit) with a padding text event.
    big = smf([notes(20_000, 384)], division=480, fmt=0)
    files["accepted-20000-notes"] = folder / "big.mid"
    files["accepted-20000-notes"].write_bytes(big)
    pad = 1024 * 1024 - len(big) - 7
    files["accepted-1-mib"] = folder / "padded.mid"
    padding = b"\\x00\\xff\\x01" + vlq(pad) + b"x" * pad
    files["accepted-1-mib"].write_bytes(smf([padding + notes(20_000, 384)], division=480, fmt=0))
    assert files["accepted-1-mib"].stat().st_size <= 1024 * 1024

    # Warm-up: imports, the model, the compiled sampler and one ordinary job, so what is measured after is
    # what the hostile inputs add.
    small = example_reference(folder)
    probe_reference(small, None)
    def run(path):
        params, _ = DRUMS.validate({"producer_style": "J Dilla", "bars": 4, "seed": 1}, None)
        workdir = folder / f"job-{path.stem}"
        workdir.mkdir()
        ctx = RunContext(workdir=workdir, models_dir=folder / "models", cache={}, inputs={"reference_midi": path})
        try:
            DRUMS.resolve("run")(params, lambda percent, stage="": None, ctx)
        except EngineInputError:
            pass
    run(small)
    baseline = peak_mb()
    outcome = {}
    for name, path in files.items():
        for probe in (probe_reference, probe_seed):
            try:
                probe(path, None)
                outcome[f"{probe.__name__}:{name}"] = "accepted"
            except UploadRejected as exc:
                outcome[f"{probe.__name__}:{name}"] = exc.status
    api_peak = peak_mb()
    for name, path in files.items():
        run(path)
    print(json.dumps({"baseline_mb": baseline, "api_mb": api_peak - baseline, "worker_mb": peak_mb() - api_peak,
                      "outcome": outcome}))
    """
)


def test_memory_per_midi_input_stays_under_100_mb(tmp_path: Path) -> None:
    """In a fresh process (peak RSS is per process): after a warm-up job, probing every hostile file and the
    largest accepted ones (as the API does at submit), then running a drums job on each (as the worker does),
    adds less than 100 MB to the peak. Before the bounded reader, ``sparse`` alone took about 5 GB."""
    here = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, here, str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(figures, indent=1))
    assert figures["outcome"]["probe_reference:accepted-20000-notes"] == "accepted"
    assert figures["outcome"]["probe_reference:accepted-1-mib"] == "accepted"
    for probe in ("reference", "seed"):
        assert all(figures["outcome"][f"probe_{probe}:{name}"] == 422 for name in HOSTILE), figures["outcome"]
    assert figures["api_mb"] < MEMORY_LIMIT_MB and figures["worker_mb"] < MEMORY_LIMIT_MB, figures
