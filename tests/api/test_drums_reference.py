"""POST /v1/drums with a reference MIDI: multipart file, JSON with an upload id, clear 4xx for unusable files."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import mido
import pytest
from _api_helpers import assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.engines.drums.engine import example_reference


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("reference"), workers=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return example_reference(tmp_path_factory.mktemp("ref")).read_bytes()


def _piano() -> bytes:
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    for pitch in (36, 38, 42, 60):
        track.append(mido.Message("note_on", channel=0, note=pitch, velocity=90, time=0))
        track.append(mido.Message("note_off", channel=0, note=pitch, velocity=0, time=240))
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def test_multipart_reference_completes_with_its_tempo_meter_and_a_closeness_report(client, reference) -> None:
    response = client.post(
        "/v1/drums",
        data={"producer_style": "J Dilla", "bars": "4", "seed": "3", "reference_mode": "vary"},
        files={"reference_midi": ("my groove.mid", reference, "audio/midi")},
        headers={"Prefer": "wait=60"},
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "completed", job
    assert job["params"]["tempo"] == 96.0 and job["params"]["time_signature"] == [4, 4]  # stored complete
    assert job["inputs"]["reference_midi"]["filename"] == "my groove.mid"
    assert job["inputs"]["reference_midi"]["instruments"] == ["kick", "snare", "closed_hihat"]
    report = job["result"]["reference"]
    assert report["mode"] == "vary" and report["distance"]["pattern"] < 0.2


def test_json_body_with_an_upload_id(client, reference) -> None:
    upload = client.post("/v1/uploads", files={"file": ("ref.mid", reference, "audio/midi")}).json()
    body = {"producer_style": "Questlove", "bars": 2, "seed": 1, "reference_midi": upload["id"]}
    response = client.post("/v1/drums", json=body, headers={"Prefer": "wait=60"})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "completed" and job["inputs"]["reference_midi"]["upload_id"] == upload["id"]
    assert job["result"]["reference"]["mode"] == "feel"
    plain = client.post("/v1/drums", json={"producer_style": "Questlove", "bars": 1, "seed": 1})
    assert plain.status_code == 202 and plain.json()["inputs"] is None  # JSON without a reference still works


def test_unusable_references_are_422_problems(client, reference) -> None:
    piano = client.post("/v1/drums", data={"producer_style": "J Dilla"}, files={"reference_midi": ("p.mid", _piano())})
    assert "no drum notes" in assert_problem(piano, 422)["detail"]
    text = client.post("/v1/drums", data={"producer_style": "J Dilla"}, files={"reference_midi": ("t.mid", b"hello")})
    assert "not a Standard MIDI File" in assert_problem(text, 422)["detail"]
    cut = client.post(
        "/v1/drums", data={"producer_style": "J Dilla"}, files={"reference_midi": ("c.mid", reference[:30])}
    )
    assert_problem(cut, 422)
    wrong_type = client.post("/v1/drums", json={"producer_style": "J Dilla", "reference_midi": 5})
    body = assert_problem(wrong_type, 422)
    assert ["body", "reference_midi"] in [e["loc"] for e in body["errors"]]
    unknown = client.post("/v1/drums", json={"producer_style": "J Dilla", "reference_midi": "no-such-upload"})
    assert "reference_midi" in assert_problem(unknown, 422)["detail"]
    clash = client.post(
        "/v1/drums",
        data={"params": '{"producer_style": "J Dilla", "time_signature": [3, 4]}'},
        files={"reference_midi": ("r.mid", reference)},
    )
    assert "reference_midi is in 4/4" in assert_problem(clash, 422)["detail"]
    uploads = Path(client.app.state.settings.files_dir) / "uploads"
    assert not list(uploads.glob("*.part"))  # nothing staged is left behind


def test_openapi_documents_both_bodies(client) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/drums"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert content["application/json"]["schema"]["properties"]["reference_midi"]["type"] == "string"
    assert content["multipart/form-data"]["schema"]["properties"]["reference_midi"]["format"] == "binary"
    assert "reference_mode" in content["application/json"]["schema"]["properties"]
