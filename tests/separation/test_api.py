"""The full path through the real app and a real worker process: upload -> job -> stems -> download."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.settings import Settings


def _song(fmt: str = "WAV", seconds: float = 2.0, rate: int = 44100, silent: bool = False, **kw) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.0 if silent else 1.0)
    clicks = np.where(np.arange(t.size) % (rate // 4) < 40, 0.5, 0.0) * (0.0 if silent else 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([tone + clicks, tone - clicks], axis=1).astype(np.float32), rate, format=fmt, **kw)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_demucs_models_dir: Path) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("sep-api")
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'cadenza.db'}",
        files_dir=tmp / "files",
        models_dir=tiny_demucs_models_dir,
        workers=1,
        min_free_disk_mb=0,
        engines={"separation": {"max_duration_s": 30.0}},
        rate_limit="10000/minute",
        auth_enabled=False,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _uploads_left(client: TestClient) -> list[Path]:
    uploads = Path(client.app.state.settings.files_dir) / "uploads"
    return list(uploads.iterdir()) if uploads.exists() else []


def _wait(client: TestClient, **kwargs) -> dict:
    response = client.post("/v1/separations", headers={"Prefer": "wait=60"}, **kwargs)
    assert response.status_code in (200, 202), response.text
    job = response.json()
    deadline = time.monotonic() + 600  # generous for a loaded 2-core machine; each GET is a long-poll
    while job["status"] not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
        job = client.get(job["url"], headers={"Prefer": "wait=60"}).json()
    assert job["status"] == "completed", job
    return job


def test_models_lists_hpss_and_the_local_demucs(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert models["hpss"]["weights_present"] and models["tiny"]["weights_present"]
    assert not models["htdemucs"]["weights_present"] and models["htdemucs"]["missing_files"]


def test_demucs_upload_to_stems(client: TestClient) -> None:
    # A FLAC sent as "song.mp3": the format comes from the content.
    job = _wait(
        client,
        data={"model": "tiny", "output_format": "flac", "shifts": "0", "sample_rate": "32000"},
        files={"file": ("song.mp3", _song("FLAC"), "audio/mpeg")},
    )
    names = sorted(o["name"] for o in job["outputs"])
    assert names == ["bass.flac", "drums.flac", "other.flac", "vocals.flac"]
    body = client.get(f"{job['url']}/files/vocals.flac")
    assert body.status_code == 200 and body.headers["content-type"].startswith("audio/flac")
    audio, rate = sf.read(io.BytesIO(body.content))
    assert rate == 32000 and audio.shape == (64000, 2)
    assert _uploads_left(client) == []


def test_hpss_two_stems_mp3(client: TestClient) -> None:
    job = _wait(
        client,
        data={"model": "hpss", "two_stems": "drums", "output_format": "mp3", "mp3_bitrate": "128"},
        files={"file": ("song.ogg", _song("OGG", subtype="VORBIS"), "audio/ogg")},
    )
    assert sorted(o["name"] for o in job["outputs"]) == ["drums.mp3", "no_drums.mp3"]
    data = client.get(f"{job['url']}/files/drums.mp3").content
    audio, rate = sf.read(io.BytesIO(data))
    assert rate == 44100 and abs(audio.shape[0] - 88200) < 2000 and np.max(np.abs(audio)) > 0.01


@pytest.mark.parametrize(
    ("form", "payload", "status", "needle"),
    [
        ({"model": "nope"}, _song(), 422, "available: hpss, tiny"),
        ({"model": "tiny", "stems": "drums,piano"}, _song(), 422, "valid: drums, bass, other, vocals"),
        ({"model": "htdemucs"}, _song(), 422, "955717e8-8726e21a.th"),
        ({}, _song("AU", subtype="PCM_16"), 415, "Supported formats: wav"),
        ({}, b"\x89PNG\r\n\x1a\n" + bytes(500), 422, "PNG image"),
        ({}, _song(seconds=31.0, rate=8000), 422, "maximum is 30 s"),
        ({}, _song(silent=True), 422, "silent"),
    ],
)
def test_rejections_are_problems_and_leave_nothing(client: TestClient, form, payload, status, needle) -> None:
    response = client.post("/v1/separations", data=form, files={"file": ("song.wav", payload, "audio/wav")})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert needle in response.json()["detail"]
    assert _uploads_left(client) == []
