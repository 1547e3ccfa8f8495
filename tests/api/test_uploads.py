"""The upload submit route (separation engine): streaming multipart, limits, probe, no files left behind."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _api_helpers import assert_problem
from fastapi.testclient import TestClient


def wav_bytes(duration_s: float = 0.5, sample_rate: int = 22050) -> bytes:
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def staged(client: TestClient) -> list[Path]:
    uploads = Path(client.app.state.settings.files_dir) / "uploads"
    return list(uploads.iterdir()) if uploads.exists() else []


def test_oversized_upload_is_413_and_leaves_nothing(idle_client: TestClient) -> None:
    big = b"\0" * (200 * 1024)  # max_upload_bytes is 64 KiB in this app
    response = idle_client.post("/v1/separations", files={"file": ("song.wav", big, "audio/wav")})
    assert_problem(response, 413)
    assert staged(idle_client) == []
    huge = b"\0" * (1024 * 1024)  # over max_upload_bytes + form overhead: refused on Content-Length
    assert_problem(idle_client.post("/v1/separations", files={"file": ("song.wav", huge, "audio/wav")}), 413)
    assert staged(idle_client) == []


def test_missing_file_part_is_422(idle_client: TestClient) -> None:
    response = idle_client.post("/v1/separations", data={"mp3_bitrate": "320"}, files={"other": ("x", b"x")})
    body = assert_problem(response, 422)
    assert ["body", "file"] in [e["loc"] for e in body["errors"]]


def test_invalid_form_field_is_422(idle_client: TestClient) -> None:
    response = idle_client.post(
        "/v1/separations", data={"mp3_bitrate": "12"}, files={"file": ("song.wav", wav_bytes(), "audio/wav")}
    )
    body = assert_problem(response, 422)
    assert ["body", "mp3_bitrate"] in [e["loc"] for e in body["errors"]]
    assert staged(idle_client) == []


def test_not_audio_is_rejected_by_probe(idle_client: TestClient) -> None:
    response = idle_client.post("/v1/separations", files={"file": ("song.wav", b"hello, not audio" * 10, "audio/wav")})
    assert response.status_code in (415, 422), response.text
    assert_problem(response, response.status_code)
    assert staged(idle_client) == []


def test_valid_upload_is_queued_and_moved(idle_client: TestClient) -> None:
    response = idle_client.post(
        "/v1/separations",
        data={"mp3_bitrate": "192"},
        files={"file": ("my song.wav", wav_bytes(), "audio/wav")},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "separation" and job["status"] == "queued"
    assert job["params"]["mp3_bitrate"] == 192
    assert staged(idle_client) == []
    idle_client.delete(job["url"])


@pytest.mark.parametrize(
    ("fields", "mention"),
    [
        ({"output_format": "ogg"}, "output_format"),
        ({"pcm_type": "PCM_8"}, "pcm_type"),
        ({"mp3_bitrate": "95"}, "mp3_bitrate"),
        ({"mp3_bitrate": "321"}, "mp3_bitrate"),
        ({"sample_rate": "7999"}, "sample_rate"),
        ({"sample_rate": "fast"}, "sample_rate"),
        ({"segment_s": "0"}, "segment_s"),
        ({"overlap": "1"}, "overlap"),
        ({"shifts": "21"}, "shifts"),
        ({"device": "tpu"}, "device"),
        ({"clip": "wrap"}, "clip"),
        ({"margin": "0.5"}, "margin"),
        ({"seed": "-1"}, "seed"),
        ({"colour": "blue"}, "colour"),
        ({"stems": "drums", "two_stems": "vocals"}, "two_stems"),
        ({"output_format": "flac", "pcm_type": "FLOAT"}, "FLAC"),
        ({"model": "no-such-model"}, "no-such-model"),
        ({"model": "htdemucs"}, "htdemucs"),  # weights not in this models_dir
        ({"model": "hpss", "stems": "kazoo"}, "kazoo"),
    ],
)
def test_separation_validation_rules(idle_client: TestClient, fields: dict, mention: str) -> None:
    response = idle_client.post("/v1/separations", data=fields, files={"file": ("a.wav", wav_bytes(), "audio/wav")})
    body = assert_problem(response, 422)
    assert mention in body["detail"] or any(mention in e["loc"] for e in body.get("errors") or [])
    assert staged(idle_client) == []


def test_silent_audio_is_rejected(idle_client: TestClient) -> None:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(11025, dtype=np.float32), 22050, format="WAV", subtype="PCM_16")
    response = idle_client.post("/v1/separations", files={"file": ("quiet.wav", buffer.getvalue(), "audio/wav")})
    assert_problem(response, 422)
    assert staged(idle_client) == []
