"""A test engine defined only in the tests (one JSON field, one optional MIDI input) gets its submit route,
OpenAPI entry, upload-by-reference, CLI command and settings section from its declaration alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import HERE, platform_settings
from echo_engine.engine import example_midi
from fastapi.testclient import TestClient

from cadenza.api.app import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    tmp = tmp_path_factory.mktemp("echo")
    settings = platform_settings(tmp, engines={"echo": {"prefix": "> "}})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def form(**fields: object) -> dict[str, tuple[None, str]]:
    """Plain form fields sent as ``multipart/form-data`` parts (what the submit route of an engine with
    declared inputs takes even when no file is sent)."""
    return {name: (None, str(value)) for name, value in fields.items()}


def _final(client: TestClient, job: dict) -> dict:
    deadline = time.monotonic() + 300  # a long-poll per request; generous for a loaded machine
    while job["status"] not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
        job = client.get(job["url"], headers={"Prefer": "wait=60"}).json()
    return job


def test_submit_route_with_params_part_and_midi_file(client: TestClient, tmp_path: Path) -> None:
    midi = example_midi(tmp_path)
    response = client.post(
        "/v1/echoes",
        data={"params": json.dumps({"text": "hi", "repeat": 2})},
        files={"seed_midi": ("riff.mid", midi.read_bytes(), "audio/midi")},
        headers={"Prefer": "wait=60"},
    )
    assert response.status_code in (200, 202), response.text
    job = _final(client, response.json())
    assert job["status"] == "completed", job
    assert job["result"]["notes"] == 3
    assert job["inputs"]["seed_midi"]["filename"] == "riff.mid" and job["inputs"]["seed_midi"]["notes"] == 3
    assert job["inputs"]["seed_midi"]["stored_as"] == "seed_midi.mid"  # the staged file kept its extension
    text = client.get(f"{job['url']}/files/echo.txt").text
    assert text == "> hi\n> hi\n"  # the engine's own settings section reached the worker


def test_optional_input_and_form_fields(client: TestClient) -> None:
    response = client.post("/v1/echoes", files=form(text="solo"), headers={"Prefer": "wait=60"})
    job = _final(client, response.json())
    assert job["status"] == "completed" and job["result"]["notes"] is None and job["inputs"] is None


def test_upload_once_reference_many_times(client: TestClient, tmp_path: Path) -> None:
    midi = example_midi(tmp_path).read_bytes()
    uploaded = client.post("/v1/uploads", files={"file": ("曲.mid", midi, "audio/midi")})
    assert uploaded.status_code == 201, uploaded.text
    upload = uploaded.json()
    assert upload["filename"] == "曲.mid" and upload["size_bytes"] == len(midi)
    assert client.get(f"/v1/uploads/{upload['id']}").json()["sha256"] == upload["sha256"]
    jobs = []
    for text in ("one", "two"):
        response = client.post("/v1/echoes", files=form(text=text, seed_midi=upload["id"]))
        assert response.status_code == 202, response.text
        jobs.append(_final(client, response.json()))
    for job in jobs:
        assert job["status"] == "completed" and job["result"]["notes"] == 3
        assert job["inputs"]["seed_midi"]["upload_id"] == upload["id"]
    # the file's SHA-256 is part of the idempotency fingerprint: same bytes by reference or sent = same job
    key = {"Idempotency-Key": "echo-sha"}
    first = client.post("/v1/echoes", files=form(text="x", seed_midi=upload["id"]), headers=key)
    again = client.post("/v1/echoes", data={"text": "x"}, files={"seed_midi": ("a.mid", midi)}, headers=key)
    assert first.status_code == 202 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    other = bytearray(midi)
    other[-5] ^= 1  # different bytes, same name and size
    conflict = client.post("/v1/echoes", data={"text": "x"}, files={"seed_midi": ("a.mid", bytes(other))}, headers=key)
    assert conflict.status_code == 422 and "idempotency" in conflict.text.lower()
    assert client.delete(f"/v1/uploads/{upload['id']}").status_code == 204
    gone = client.post("/v1/echoes", files=form(text="x", seed_midi=upload["id"]))
    assert gone.status_code == 422 and "seed_midi" in gone.json()["detail"]


def test_wrong_format_and_limits_leave_nothing(client: TestClient) -> None:
    uploads = Path(client.app.state.settings.files_dir) / "uploads"
    before = sorted(p.name for p in uploads.glob("*")) if uploads.exists() else []
    wrong = client.post("/v1/echoes", data={"text": "x"}, files={"seed_midi": ("a.mid", b"RIFF not midi")})
    assert wrong.status_code == 415 and wrong.headers["content-type"].startswith("application/problem+json")
    big = client.post("/v1/echoes", data={"text": "x"}, files={"seed_midi": ("a.mid", b"MThd" + b"\0" * 70_000)})
    assert big.status_code == 413
    bad_params = client.post("/v1/echoes", files=form(params="[1, 2]"))
    assert bad_params.status_code == 422
    assert (sorted(p.name for p in uploads.glob("*")) if uploads.exists() else []) == before


def test_openapi_entry(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/v1/echoes"]["post"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"seed_midi", "params", "text", "repeat"} <= set(schema["properties"])
    assert "seed_midi" not in schema["required"] and "text" in schema["required"]
    assert "EchoRequest" in document["components"]["schemas"]
    assert "/v1/uploads" in document["paths"]
    assert client.get("/ready").json()["engines"]["echo"]["ok"] is True


def test_cli_command_and_settings_section(tmp_path: Path) -> None:
    cadenza = Path(sys.executable).with_name("cadenza")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
    env |= {
        "CADENZA_PLUGINS": '["echo_engine"]',
        "CADENZA_ENGINES__ECHO__PREFIX": "cli: ",
        "PYTHONPATH": str(HERE),
    }
    helped = subprocess.run([str(cadenza), "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "echo" in helped.stdout
    ran = subprocess.run(
        [str(cadenza), "echo", "--text", "hey", "--repeat", "2"], env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "cli: hey\ncli: hey\n"
    env["CADENZA_ENGINES__ECHO__BOGUS"] = "1"
    bad = subprocess.run([str(cadenza), "config", "show"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "engines.echo.bogus" in bad.stderr
