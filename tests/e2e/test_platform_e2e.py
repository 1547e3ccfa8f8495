"""Platform behaviour across real processes: ``cadenza serve --config`` with an engine's settings section,
and a ``cadenza worker`` killed mid-job, detected through its job's expired lease (not its pid)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import start_server  # noqa: E402

PLATFORM_TESTS = Path(__file__).resolve().parents[1] / "platform"


def test_serve_config_custom_style_reaches_api_and_worker(tmp_path: Path) -> None:
    styles = tmp_path / "styles.yaml"
    styles.write_text(
        "styles:\n  - name: Basement Shuffle\n    description: custom\n"
        "    preferred_tempo_range: [88, 100]\n    conditioning: {hiphop: 1.0}\n"
    )
    config = tmp_path / "cadenza.yaml"
    config.write_text(f"engines:\n  drums:\n    styles_path: {styles}\n")
    server = start_server(tmp_path, args=("--config", str(config)))
    try:
        with httpx.Client(base_url=server.base_url, timeout=90) as client:
            body = {"producer_style": "basement shuffle", "bars": 1, "seed": 3}
            response = client.post("/v1/drums", json=body, headers={"Prefer": "wait=60"})
            assert response.status_code == 200, response.text
            job = response.json()
            assert job["status"] == "completed", job
            assert job["result"]["style"] == "Basement Shuffle"
    finally:
        assert server.stop() == 0


def _wait_status(client: httpx.Client, url: str, wanted: set[str], deadline_s: float = 240) -> dict:
    deadline = time.monotonic() + deadline_s
    job = client.get(url).json()
    while job["status"] not in wanted and time.monotonic() < deadline:
        job = client.get(url, headers={"Prefer": "wait=30"}).json()  # long-poll: answers on a status change
    return job


def test_killed_worker_is_detected_through_its_lease(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PLATFORM_TESTS), os.environ.get("PYTHONPATH")])))
    server = start_server(tmp_path, workers="0", job_lease_s="2", plugins='["echo_engine"]')
    cadenza = Path(sys.executable).with_name("cadenza")
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [str(cadenza), "worker"],
            env={**server.env, "CADENZA_WORKERS": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the whole worker (parent and child) is killed
        )
    try:
        with httpx.Client(base_url=server.base_url, timeout=90) as client:
            form = {"text": (None, "slow"), "sleep_s": (None, "60")}
            created = client.post("/v1/echoes", files=form)
            assert created.status_code == 202, created.text
            url = created.headers["location"]
            running = _wait_status(client, url, {"processing", "completed", "failed"})
            assert running["status"] == "processing", (running, log_path.read_text())
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
            job = _wait_status(client, url, {"queued", "failed", "completed", "cancelled"})
            assert job["status"] == "failed", job  # the echo engine does not retry after a crash
            assert job["error"]["type"] == "WorkerLost" and "lease" in job["error"]["message"], job
            events = client.get(f"{url}/events").text
            assert "WorkerLost" in events
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        assert server.stop() == 0


def _worker_pid(db: Path, job_id: str) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        (worker_id,) = conn.execute("SELECT worker_id FROM jobs WHERE id = ?", (job_id.replace("-", ""),)).fetchone()
    return int(worker_id.rsplit(":", 1)[1])


def test_orphaned_worker_dying_after_a_server_restart_is_noticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: SIGKILL only `cadenza serve`, restart it while its orphaned worker still runs the job
    (recovery rightly leaves the job alone), then let the orphan die: the new server must notice (the
    job's lease expires) instead of leaving the job in `processing` until the next restart."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PLATFORM_TESTS), os.environ.get("PYTHONPATH")])))
    settings = {"workers": "1", "job_lease_s": "2", "plugins": '["echo_engine"]'}
    first = start_server(tmp_path, **settings)
    orphan_pid = None
    try:
        with httpx.Client(base_url=first.base_url, timeout=90) as client:
            created = client.post("/v1/echoes", files={"text": (None, "slow"), "sleep_s": (None, "120")})
            assert created.status_code == 202, created.text
            url, job_id = created.headers["location"], created.json()["id"]
            running = _wait_status(client, url, {"processing", "completed", "failed"})
            assert running["status"] == "processing", (running, first.logs())
        orphan_pid = _worker_pid(tmp_path / "cadenza.db", job_id)
        first.process.kill()  # SIGKILL the server only: its worker is orphaned and keeps the lease alive
        first.process.wait(timeout=30)
        os.kill(orphan_pid, 0)  # still running
        second = start_server(tmp_path, **settings)
        try:
            with httpx.Client(base_url=second.base_url, timeout=90) as client:
                job = client.get(url).json()
                assert job["status"] == "processing", job  # recovery left the live orphan's job alone
                os.kill(orphan_pid, signal.SIGKILL)
                orphan_pid = None
                job = _wait_status(client, url, {"queued", "failed", "completed", "cancelled"})
                assert job["status"] == "failed", job  # the echo engine does not retry after a crash
                assert job["error"]["type"] == "WorkerLost" and "lease" in job["error"]["message"], job
                # The new server keeps serving: a fresh job runs on its own worker.
                quick = client.post("/v1/echoes", files={"text": (None, "hi")}, headers={"Prefer": "wait=60"})
                assert quick.status_code in (200, 202), quick.text
                assert _wait_status(client, quick.headers["location"], {"completed", "failed"})["status"] == "completed"
        finally:
            assert second.stop() == 0, second.logs()
    finally:
        if orphan_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(orphan_pid, signal.SIGKILL)
        first.stop()


def test_sighup_reloads_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "cadenza.yaml"
    config.write_text("rate_limit: 1000/minute\n")
    server = start_server(tmp_path, args=("--config", str(config)))
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            assert client.get("/v1/jobs").headers["RateLimit-Limit"] == "1000"
            config.write_text("rate_limit: 40/minute\nretention_completed_h: 2\njob_timeout_s: 300\n")
            server.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 120  # the reload runs in a thread of the server: wait for its log line
            while '"reloaded"' not in server.logs() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert '"reloaded"' in server.logs(), server.logs()
            assert client.get("/v1/jobs").headers["RateLimit-Limit"] == "40"
            line = next(line for line in server.logs().splitlines() if '"reloaded"' in line)
            assert '"needs_restart": ["job_timeout_s"]' in line and "retention_completed_h" in line
    finally:
        assert server.stop() == 0, server.logs()
