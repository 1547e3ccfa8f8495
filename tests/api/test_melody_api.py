"""POST /v1/melodies over the real app with a worker: the issue's acceptance requests, a seed upload, presets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import symusic
from _api_helpers import assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.engines.melody.engine import example_seed


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("melody"), workers=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _done(client: TestClient, response) -> dict:
    assert response.status_code in (200, 202), response.text
    job = response.json()
    if job["status"] not in ("completed", "failed"):
        job = client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=60"}).json()
    assert job["status"] == "completed", job
    return job


def test_an_8_bar_jig_in_d_major_as_midi_and_abc(client: TestClient) -> None:
    body = {"key": "D major", "time_signature": [6, 8], "bars": 8, "seed": 1}
    job = _done(client, client.post("/v1/melodies", json=body, headers={"Prefer": "wait=60"}))
    names = {o["name"] for o in job["outputs"]}
    assert names == {"melody.mid", "melody.abc"}
    abc = client.get(f"/v1/jobs/{job['id']}/files/melody.abc").text
    assert "M:6/8" in abc and "K:D" in abc
    midi = symusic.Score.from_midi(client.get(f"/v1/jobs/{job['id']}/files/melody.mid").content)
    assert midi.end() == 8 * 3 * midi.tpq and (
        midi.time_signatures[0].numerator,
        midi.time_signatures[0].denominator,
    ) == (6, 8)


def test_a_seed_upload_is_continued_and_8_samples_differ(client: TestClient, tmp_path) -> None:
    seed = example_seed(tmp_path).read_bytes()
    job = _done(
        client,
        client.post(
            "/v1/melodies",
            data={"bars": "6", "seed": "4", "num_samples": "8"},
            files={"seed_midi": ("phrase.mid", seed, "audio/midi")},
            headers={"Prefer": "wait=60"},
        ),
    )
    assert job["params"]["key"] == "D major" and job["params"]["time_signature"] == [6, 8]
    assert job["inputs"]["seed_midi"]["notes"] == 6
    midis = [client.get(f"/v1/jobs/{job['id']}/files/melody_{i}.mid").content for i in range(1, 9)]
    assert len(set(midis)) == 8
    first = symusic.Score.from_midi(midis[0]).tracks[0].notes
    assert [(n.time, n.pitch) for n in first[:6]] == [
        (n.time, n.pitch) for n in symusic.Score.from_midi(seed).tracks[0].notes
    ]


def test_presets_and_errors(client: TestClient) -> None:
    presets = client.get("/v1/melodies/presets").json()
    assert {p["name"] for p in presets["presets"]} >= {"conservative", "balanced", "creative"}
    assert_problem(client.post("/v1/melodies", json={"key": "H major"}), 422)
    assert_problem(client.post("/v1/melodies", json={"time_signature": [5, 4]}), 422)
    unknown = client.post("/v1/melodies", json={"profile": "wild"})
    assert "valid profiles" in assert_problem(unknown, 422)["detail"]
    drums = client.post("/v1/melodies", files={"seed_midi": ("x.mid", b"MThd\x00\x00\x00\x06garbage")})
    assert_problem(drums, 422)


def test_quick_mid_answers_the_midi_of_an_ordinary_job(client: TestClient) -> None:
    response = client.get("/v1/melodies/quick.mid?key=D+major&time_signature=6/8&bars=8&seed=1")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/midi"
    score = symusic.Score.from_midi(response.content)
    assert score.end() == 8 * 3 * score.tpq
    # the same job machinery: listed, and the same request and seed as the POST give the same bytes
    job_url = response.headers["content-location"].rsplit("/files/", 1)[0]
    job = client.get(job_url).json()
    assert job["status"] == "completed" and job["params"]["time_signature"] == [6, 8]
    assert any(j["id"] == job["id"] for j in client.get("/v1/jobs?kind=melody").json()["jobs"])
    posted = _done(
        client,
        client.post(
            "/v1/melodies",
            json={"key": "D major", "time_signature": [6, 8], "bars": 8, "seed": 1},
            headers={"Prefer": "wait=60"},
        ),
    )
    assert client.get(f"/v1/jobs/{posted['id']}/files/melody.mid").content == response.content


def test_quick_mid_refuses_big_or_bad_requests(client: TestClient) -> None:
    assert "num_samples" in assert_problem(client.get("/v1/melodies/quick.mid?num_samples=4"), 422)["detail"]
    assert "bars" in assert_problem(client.get("/v1/melodies/quick.mid?bars=64"), 422)["detail"]
    assert "audio" in assert_problem(client.get("/v1/melodies/quick.mid?formats=wav"), 422)["detail"]
    assert_problem(client.get("/v1/melodies/quick.mid?key=H+major"), 422)
    assert_problem(client.get("/v1/melodies/quick.mid?volume=11"), 422)
    operation = client.get("/openapi.json").json()["paths"]["/v1/melodies/quick.mid"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"key", "bars", "seed", "time_signature"}
    assert "audio/midi" in operation["responses"]["200"]["content"]


def test_workers_report_the_models_jobs_load_and_unload_idle_ones(tmp_path) -> None:
    import time

    settings = make_settings(tmp_path, workers=1, engines={"melody": {"model_idle_s": 5}})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        model = "/v1/models/melody-transformer"
        assert client.get(model).json()["loaded"] is False
        _done(client, client.post("/v1/melodies", json={"bars": 2, "seed": 1}, headers={"Prefer": "wait=60"}))

        def wait_for(loaded: bool) -> None:
            deadline = time.monotonic() + 60
            while client.get(model).json()["loaded"] is not loaded:
                assert time.monotonic() < deadline, f"the model never became loaded={loaded}"
                time.sleep(0.05)

        wait_for(True)  # the job loaded it; the worker says so
        wait_for(False)  # unused for 5 s: unloaded
