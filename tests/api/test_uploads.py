"""The upload submit route (separation engine): streaming multipart, limits, probe, no files left behind."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from _api_helpers import DRUMS, assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.api.routes.submit import MAX_FORM_BYTES, MAX_PARTS


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


@pytest.mark.parametrize("params", ["", "  \r\n"])
def test_an_empty_params_part_means_not_given(idle_client: TestClient, params: str) -> None:
    """Regression: an empty ``params`` part was a 422 (JSON decode error) while an empty field means "not given"."""
    form = {"params": (None, params), **{name: (None, str(value)) for name, value in DRUMS.items()}}
    response = idle_client.post("/v1/drums", files=form)
    assert response.status_code == 202, response.text
    assert response.json()["params"]["seed"] == DRUMS["seed"]
    idle_client.delete(response.json()["url"])


@pytest.fixture(scope="module")
def roomy_client(module_tmp: Path) -> Iterator[TestClient]:
    """Default body limits (200 MB uploads): the form's own limits are what answers."""
    app = create_app(make_settings(module_tmp / "roomy"), start_workers=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def multipart(parts: list[tuple[str, bytes]]) -> tuple[bytes, dict[str, str]]:
    body = b"".join(
        b'--b0undary\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n' + value + b"\r\n"
        for name, value in parts
    )
    return body + b"--b0undary--\r\n", {"Content-Type": "multipart/form-data; boundary=b0undary"}


@pytest.mark.parametrize("path", ["/v1/drums", "/v1/uploads"])
def test_a_field_name_repeated_10000_times_is_refused_without_holding_it(roomy_client: TestClient, path: str) -> None:
    """Regression: the part limit counted distinct names, so one name repeated was kept in memory up to the body
    limit (200 MB; four such requests held 874 MB). Now the 65th part stops the parser: 422, and the request
    allocates almost nothing (tracemalloc: the parser is Python) where the whole ~11 MB used to be held."""
    body, headers = multipart([("producer_style", b"x" * 1000)] * 10_000)
    tracemalloc.start()
    try:
        response = roomy_client.post(path, content=body, headers=headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    problem = assert_problem(response, 422)
    assert f"at most {MAX_PARTS}" in problem["detail"] and "repeated name" in problem["detail"]
    assert peak < 2_000_000, f"{peak} bytes allocated while refusing a {len(body)}-byte form"
    assert staged(roomy_client) == []


def test_parts_are_counted_not_names(roomy_client: TestClient) -> None:
    body, headers = multipart([("bars", b"1")] * MAX_PARTS)
    assert roomy_client.post("/v1/drums", content=body, headers=headers).status_code == 422  # no producer_style
    body, headers = multipart([*((f"x{i}", b"1") for i in range(MAX_PARTS)), ("x0", b"1")])
    assert (
        f"at most {MAX_PARTS}"
        in assert_problem(roomy_client.post("/v1/drums", content=body, headers=headers), 422)["detail"]
    )


def test_form_fields_are_bounded_in_total(roomy_client: TestClient) -> None:
    """Each field is under its own 16 KiB limit, together they pass ``MAX_FORM_BYTES``: 413 naming the limit."""
    count = MAX_FORM_BYTES // 15_000 + 1
    body, headers = multipart([("params", b" " * 15_000)] * count)
    problem = assert_problem(roomy_client.post("/v1/drums", content=body, headers=headers), 413)
    assert str(MAX_FORM_BYTES) in problem["detail"] and "together" in problem["detail"]
    body, headers = multipart([("params", b" " * 15_000)] * (count - 1) + [("producer_style", b"J Dilla")])
    accepted = roomy_client.post("/v1/drums", content=body, headers=headers)
    assert accepted.status_code == 202, accepted.text  # just under the limit, and blank params: not given
