"""Real worker process + real drums engine behind the app: wait, download, ranges, events, cancel, delete."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator

import mido
import pytest
from _api_helpers import DRUMS, assert_problem, make_settings, read_sse
from fastapi.testclient import TestClient

from cadenza.api.app import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("workers"), workers=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def done(client: TestClient) -> dict:
    response = client.post("/v1/drums", json={**DRUMS, "bars": 2}, headers={"Prefer": "wait=60"})
    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == "wait=60"
    job = response.json()
    assert job["status"] == "completed", job
    return job


def test_completed_job_has_outputs_with_urls(done: dict) -> None:
    names = {o["name"]: o for o in done["outputs"]}
    assert "groove.mid" in names
    assert names["groove.mid"]["url"] == f"/v1/jobs/{done['id']}/files/groove.mid"
    assert done["result"] is not None and done["progress"] == 100
    assert done["stage"] is None  # regression: finished jobs kept their last stage ("encoding")


def test_download_midi_headers_etag_and_ranges(client: TestClient, done: dict) -> None:
    url = f"{done['url']}/files/groove.mid"
    full = client.get(url)
    assert full.status_code == 200
    assert full.headers["content-type"] == "audio/midi"
    # Regression: every job's files were saved as groove.mid (curl -OJ failed on the second job).
    short = done["id"].replace("-", "")[:8]
    expected = f"j-dilla_90bpm_2bars_s1_{short}.mid"
    assert full.headers["content-disposition"] == f'attachment; filename="{expected}"'
    assert {o["name"]: o["download_name"] for o in done["outputs"]}["groove.mid"] == expected
    assert "download_stem" not in done["outputs"][0]["metadata"]
    assert full.headers["accept-ranges"] == "bytes"
    sha = hashlib.sha256(full.content).hexdigest()
    assert full.headers["etag"] == f'"{sha}"'
    assert mido.MidiFile(file=io.BytesIO(full.content)).length > 0
    size = len(full.content)

    partial = client.get(url, headers={"Range": "bytes=0-13"})
    assert partial.status_code == 206
    assert partial.content == full.content[:14] and partial.content.startswith(b"MThd")
    assert partial.headers["content-range"] == f"bytes 0-13/{size}"
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == full.content[-10:]

    unsatisfiable = client.get(url, headers={"Range": f"bytes={size + 10}-"})
    assert_problem(unsatisfiable, 416)
    assert unsatisfiable.headers["content-range"] == f"bytes */{size}"
    assert client.get(url, headers={"Range": "lines=1-2"}).status_code == 200  # invalid Range ignored

    cached = client.get(url, headers={"If-None-Match": full.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


@pytest.mark.parametrize(
    "name", ["..%2F..%2Fetc%2Fpasswd", "..%2Fcadenza.db", "..%5C..%5Cgroove.mid", "groove.mid%00.txt", "nope.mid"]
)
def test_unknown_and_traversal_file_names_are_404(client: TestClient, done: dict, name: str) -> None:
    response = client.get(f"{done['url']}/files/{name}")
    assert_problem(response, 404)
    assert "root:" not in response.text


def test_events_of_completed_job(client: TestClient, done: dict) -> None:
    events = read_sse(client, f"{done['url']}/events")
    types = [e["event"] for e in events]
    assert types[0] == "status" and types[-1] == "status"
    assert "output" in types and "progress" in types
    assert events[-1]["data"].count('"completed"') >= 1


def test_cancel_running_job(client: TestClient) -> None:
    job = client.post("/v1/drums", json={**DRUMS, "bars": 32, "formats": ["midi", "wav"], "seed": 11}).json()
    deadline = time.monotonic() + 60
    while client.get(job["url"]).json()["status"] == "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
    cancelled = client.post(f"{job['url']}/cancel").json()
    assert cancelled["status"] in ("processing", "cancelled")
    while client.get(job["url"]).json()["status"] not in ("cancelled", "completed") and time.monotonic() < deadline:
        time.sleep(0.1)
    final = client.get(job["url"]).json()
    assert final["status"] == "cancelled", final
    assert_problem(client.get(f"{job['url']}/files/groove.mid"), 410)


def test_delete_completed_job_removes_files(client: TestClient) -> None:
    job = client.post("/v1/drums", json={**DRUMS, "seed": 12}, headers={"Prefer": "wait=60"}).json()
    assert job["status"] == "completed"
    assert client.get(f"{job['url']}/files/groove.mid").status_code == 200
    assert client.delete(job["url"]).status_code == 204
    assert_problem(client.get(f"{job['url']}/files/groove.mid"), 404)
    files_dir = client.app.state.settings.files_dir
    assert not any(job["id"] in str(path) for path in files_dir.rglob("*"))


def test_metrics_and_ready_with_pool(client: TestClient, done: dict) -> None:
    text = client.get("/metrics").text
    assert 'cadenza_jobs{kind="drums",status="completed"}' in text
    checks = client.get("/ready").json()["checks"]
    assert checks["workers"]["ok"] is True


def test_load_and_unload_model_in_workers(client: TestClient) -> None:
    models = client.get("/v1/models").json()["models"]
    drums = next(m for m in models if m["engine"] == "drums" and m["weights_present"])
    loaded = client.post(f"/v1/models/{drums['name']}/load")
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["loaded"] is True
    assert client.get(f"/v1/models/{drums['name']}").json()["loaded"] is True
    unloaded = client.post(f"/v1/models/{drums['name']}/unload").json()
    assert unloaded["loaded"] is False
    body = assert_problem(client.post("/v1/models/htdemucs/load"), 422)  # no Demucs weights in this models_dir
    assert "htdemucs" in body["detail"]


def test_head_on_a_file_has_the_get_headers_and_no_body(client: TestClient, done: dict) -> None:
    """Regression: HEAD on a file answered 405."""
    url = f"{done['url']}/files/groove.mid"
    got, head = client.get(url), client.head(url)
    assert head.status_code == 200 and head.content == b""
    volatile = {"date", "x-request-id", "ratelimit-remaining", "ratelimit-reset"}
    assert {k: v for k, v in head.headers.items() if k not in volatile} == {
        k: v for k, v in got.headers.items() if k not in volatile
    }
