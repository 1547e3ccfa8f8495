"""POST /v1/tracks over the real app with a worker: the issue's acceptance request, the genre list and the
interpretation preview."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import mido
import pytest
import soundfile as sf
from _api_helpers import assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("track"), workers=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_a_60_second_lofi_track_in_a_minor_at_84_bpm(client: TestClient) -> None:
    body = {"prompt": "lo-fi hip hop, 84 bpm, A minor, dusty Rhodes, 60 seconds", "seed": 1}
    response = client.post("/v1/tracks", json=body, headers={"Prefer": "wait=60"})
    job = response.json()
    if job["status"] not in ("completed", "failed"):
        job = client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=60"}).json()
    assert job["status"] == "completed", job
    names = {o["name"] for o in job["outputs"]}
    assert {"track.wav", "track.mp3", "arrangement.mid", "track.json", "stem-drums.wav", "stem-harmony.wav"} <= names
    files = f"/v1/jobs/{job['id']}/files"
    wav = client.get(f"{files}/track.wav")
    info = sf.info(io.BytesIO(wav.content))
    assert info.frames == 60 * 44100 and info.samplerate == 44100 and info.channels == 2
    mp3 = client.get(f"{files}/track.mp3")
    assert mp3.headers["content-type"] == "audio/mpeg" and len(mp3.content) > 60 * 320_000 / 8 * 0.9
    assert "lo-fi-hip-hop_84bpm_a-minor_s1" in mp3.headers["content-disposition"]
    doc = client.get(f"{files}/track.json").json()
    assert (doc["tempo_bpm"], doc["key"]) == (84, "A minor")
    assert abs(doc["measured"]["integrated_lufs"] + 14) <= 0.5 and doc["measured"]["true_peak_dbtp"] <= -1.0
    assert doc["measured"]["duration_s"] == 60.0
    assert doc["interpretation"]["key"]["words"] == "a minor"
    assert doc["parts"][2]["instrument"] == "harmony (Electric Piano 1)"  # the prompt's Rhodes
    midi = mido.MidiFile(file=io.BytesIO(client.get(f"{files}/arrangement.mid").content))
    assert [t.name for t in midi.tracks][1:] == [p["instrument"] for p in doc["parts"]]
    assert job["result"]["integrated_lufs"] == doc["measured"]["integrated_lufs"]


def test_genres_and_the_interpretation_preview(client: TestClient) -> None:
    genres = client.get("/v1/tracks/genres").json()
    assert genres["count"] >= 15 and {"trap", "jazz", "ambient"} <= {g["name"] for g in genres["genres"]}
    preview = client.post("/v1/tracks/interpret", json={"prompt": "slow jazz waltz in Bb with a kazoo", "seed": 3})
    assert preview.status_code == 200, preview.text
    plan = preview.json()
    assert plan["time_signature"] == [3, 4] and plan["key"] == "Bb major" and plan["genre"] == "jazz"
    assert plan["interpretation"]["unused_words"] == ["kazoo"] and plan["warnings"]
    assert json.dumps(plan) == json.dumps(
        client.post("/v1/tracks/interpret", json={"prompt": "slow jazz waltz in Bb with a kazoo", "seed": 3}).json()
    )


def test_bad_track_requests_are_problems(client: TestClient) -> None:
    assert (
        "unknown genre"
        in assert_problem(client.post("/v1/tracks", json={"prompt": "x", "genre": "polka"}), 422)["detail"]
    )
    assert_problem(client.post("/v1/tracks", json={"prompt": ""}), 422)
    assert_problem(client.post("/v1/tracks", json={"prompt": "x", "duration_s": 301}), 422)
    assert_problem(client.post("/v1/tracks", json={"prompt": "x", "formats": ["ogg"]}), 422)
    assert_problem(client.post("/v1/tracks/interpret", json={"prompt": "prog in 7/8"}), 422)


def test_an_emoji_prompt_and_japanese_lyrics_make_a_completed_track(client: TestClient) -> None:
    """Text fields accept any Unicode; MIDI meta text is written as UTF-8 (it was Latin-1: the job failed)."""
    body = {"prompt": "lo-fi 🎧 夜の雨, 84 bpm, 8 seconds", "lyrics": "こんにちは 世界 ラララ 🌧", "seed": 5}
    job = client.post("/v1/tracks", json=body, headers={"Prefer": "wait=60"}).json()
    while job["status"] not in ("completed", "failed", "cancelled"):  # a long-poll per request
        job = client.get(f"/v1/jobs/{job['id']}", headers={"Prefer": "wait=60"}).json()
    assert job["status"] == "completed", job
    data = client.get(f"/v1/jobs/{job['id']}/files/arrangement.mid").content
    midi = mido.MidiFile(file=io.BytesIO(data), charset="utf-8")
    assert midi.tracks[0].name == "Cadenza - lo-fi 🎧 夜の雨, 84 bpm, 8 seconds"
    sung = "".join(m.text for track in midi.tracks for m in track if m.type == "lyrics")
    assert "こ" in sung and "世" in sung
