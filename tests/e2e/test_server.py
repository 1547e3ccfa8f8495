"""Over real HTTP against ``cadenza serve``: submit, SSE to completion, download (with Range), cancel,
delete, structured logs; and the SIGTERM drain (running job completes, intake refused, exit 0)."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import Server, start_server  # noqa: E402

GROOVE = {"producer_style": "J Dilla", "bars": 4, "tempo": 90, "seed": 3}
LONG = {"producer_style": "J Dilla", "bars": 32, "tempo": 90, "seed": 4, "formats": ["midi", "wav"]}


def follow_events(client: httpx.Client, url: str) -> list[dict]:
    events: list[dict] = []
    current: dict = {}
    with client.stream("GET", url, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    events.append({**current, "data": json.loads(current["data"])})
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                current[key] = value.strip()
    return events


def wait_status(client: httpx.Client, url: str, statuses: set[str], timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(url).json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job did not reach {statuses}: {job}")


def test_full_flow_over_http(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        created = client.post("/v1/drums", json=GROOVE, headers={"X-Request-ID": "e2e-submit-1"})
        assert created.status_code == 202, created.text
        job = created.json()
        assert created.headers["location"] == f"/v1/jobs/{job['id']}"

        events = follow_events(client, f"/v1/jobs/{job['id']}/events")
        sequences = [int(e["id"]) for e in events]
        assert sequences == sorted(sequences)
        assert events[-1]["event"] == "status" and events[-1]["data"]["data"]["status"] == "completed"
        assert any(e["event"] == "progress" for e in events)

        done = client.get(f"/v1/jobs/{job['id']}").json()
        assert done["status"] == "completed"
        midi_url = next(o["url"] for o in done["outputs"] if o["name"] == "groove.mid")
        full = client.get(midi_url)
        assert full.status_code == 200 and full.content.startswith(b"MThd")
        assert full.headers["etag"] == f'"{hashlib.sha256(full.content).hexdigest()}"'
        part = client.get(midi_url, headers={"Range": "bytes=4-11"})
        assert part.status_code == 206 and part.content == full.content[4:12]
        assert part.headers["content-range"] == f"bytes 4-11/{len(full.content)}"

        other = client.post("/v1/drums", json=LONG).json()
        cancelled = client.post(f"/v1/jobs/{other['id']}/cancel")
        assert cancelled.status_code == 200
        assert wait_status(client, f"/v1/jobs/{other['id']}", {"cancelled"})["status"] == "cancelled"

        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
        gone = client.get(f"/v1/jobs/{job['id']}")
        assert gone.status_code == 404 and gone.headers["content-type"].startswith("application/problem+json")

    def is_access(line: dict) -> bool:
        return line.get("event") == "request" and line.get("request_id") == "e2e-submit-1"

    lines = server.json_lines(until=lambda lines: any(is_access(line) for line in lines))
    access = [line for line in lines if is_access(line)]
    assert access and access[0]["status"] == 202 and access[0]["method"] == "POST"
    assert {"duration_ms", "path", "key_id", "timestamp", "level"} <= set(access[0])


def test_sigterm_drains_running_job_then_exits_0(tmp_path: Path) -> None:
    server = start_server(tmp_path, shutdown_timeout_s="120")
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            job = client.post("/v1/drums", json={**LONG, "bars": 8}).json()
            wait_status(client, f"/v1/jobs/{job['id']}", {"processing"}, timeout_s=60)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            try:
                refused = client.post("/v1/drums", json=GROOVE)
                assert refused.status_code == 503
                assert refused.headers["retry-after"]
                assert refused.headers["content-type"].startswith("application/problem+json")
            except httpx.TransportError:
                pass  # already closed: connection refused is also correct
        assert server.process.wait(timeout=180) == 0, server.logs()
    finally:
        server.stop()
    from cadenza.jobs import JobService
    from cadenza.settings import Settings

    service = JobService(Settings(database_url=server.env["CADENZA_DATABASE_URL"], files_dir=tmp_path / "files"))
    assert service.get(job["id"]).status == "completed"


def test_external_worker_process_runs_jobs(tmp_path: Path) -> None:
    server = start_server(tmp_path, workers="0")
    cadenza = Path(sys.executable).with_name("cadenza")
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [str(cadenza), "worker"], env={**server.env, "CADENZA_WORKERS": "1"}, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        with httpx.Client(base_url=server.base_url, timeout=90) as client:
            response = client.post("/v1/drums", json={**GROOVE, "bars": 1}, headers={"Prefer": "wait=60"})
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "completed"
            assert "workers" not in client.get("/ready").json()["checks"]  # no local pool to check
            assert client.post("/v1/models/groove-transformer/load").status_code == 409
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()
        assert server.stop() == 0


def test_a_submit_logs_one_api_line_with_its_job(server) -> None:
    """Regression: each submit logged two near-duplicate lines (``job_submitted`` and the access line)."""

    import httpx as _httpx

    body = {"producer_style": "J Dilla", "bars": 1, "tempo": 150, "seed": 77}  # 150 BPM: a tempo warning
    response = _httpx.post(f"{server.base_url}/v1/drums", json=body, timeout=30)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    request_id = response.headers["X-Request-ID"]

    def is_api(line: dict) -> bool:
        return line.get("request_id") == request_id and line.get("logger") == "cadenza.api"

    # Wait for the access line, then give a (wrong) second line the same chance to show: a later request's
    # line is written after this one's, so once it is there every line of the submit is too.
    server.json_lines(until=lambda lines: any(is_api(line) for line in lines))
    marker = _httpx.get(f"{server.base_url}/health", timeout=30).headers["X-Request-ID"]
    lines = server.json_lines(until=lambda lines: any(line.get("request_id") == marker for line in lines))
    api_lines = [line for line in lines if is_api(line)]
    assert [line["event"] for line in api_lines] == ["request"], api_lines
    (line,) = api_lines
    assert line["job_id"] == job_id and line["kind"] == "drums" and line["created"] is True
    assert line["status"] == 202 and any("tempo" in w for w in line["warnings"])
