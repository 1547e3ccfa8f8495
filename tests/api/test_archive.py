"""GET /v1/jobs/{id}/archive.zip: every output of a completed job in one ZIP under its download name."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from _api_helpers import DRUMS, assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app


def test_the_archive_holds_every_output_under_its_download_name(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, workers=1)), raise_server_exceptions=False) as client:
        job = client.post("/v1/drums", json={**DRUMS, "formats": ["midi", "wav"]}, headers={"Prefer": "wait=60"}).json()
        assert job["status"] == "completed", job
        response = client.get(f"{job['url']}/archive.zip")
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        assert f"drums_{job['id'].replace('-', '')[:8]}.zip" in response.headers["content-disposition"]
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        assert sorted(archive.namelist()) == sorted(o["download_name"] for o in job["outputs"])
        for output in job["outputs"]:
            assert archive.read(output["download_name"]) == client.get(output["url"]).content
        assert list((tmp_path / "files" / "tmp").iterdir()) == []  # the temporary file is gone once sent
    with TestClient(create_app(make_settings(tmp_path / "idle"), start_workers=False)) as idle:
        queued = idle.post("/v1/drums", json=DRUMS).json()
        assert_problem(idle.get(f"{queued['url']}/archive.zip"), 409)
        idle.post(f"{queued['url']}/cancel")
        assert_problem(idle.get(f"{queued['url']}/archive.zip"), 410)
        assert_problem(idle.get("/v1/jobs/6f1c2e1e-5a35-4a8e-9d7b-0b8b0f7c2a11/archive.zip"), 404)
