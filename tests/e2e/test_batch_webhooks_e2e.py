"""The issue's 'done when' for batches and webhooks, end to end with real ``cadenza serve`` processes: a 100-job
mixed batch with a webhook to a receiver that fails every message twice, the server stopped (SIGTERM) and
restarted mid-batch, gives exactly one signed ``job.completed`` delivery per job plus the batch's, all verified
with the secret ``cadenza config show --secrets`` prints; and ``cadenza batch FILE.jsonl`` against a server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx

from .conftest import start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_shared"))
from polling import until  # noqa: E402
from webhook_receiver import Receiver, verify  # noqa: E402

WEBHOOKS = {
    "webhook_allowed_hosts": '["127.0.0.1"]',
    "webhook_retry_base_s": "0.2",
    "webhook_retry_max_s": "1",
    "webhook_concurrency": "8",
    "webhook_poll_interval_s": "0.05",
}


def _jobs(n: int) -> list[dict]:
    jobs = []
    for i in range(n):
        if i % 4 == 3:
            jobs.append({"kind": "melody", "params": {"bars": 2, "seed": i}})
        else:
            jobs.append({"kind": "drums", "params": {"producer_style": "J Dilla", "bars": 1, "tempo": 90, "seed": i}})
    return jobs


def _batch(base_url: str, batch_id: str) -> dict:
    return httpx.get(f"{base_url}/v1/batches/{batch_id}", timeout=30).json()


def test_a_100_job_batch_gives_one_signed_delivery_per_job_across_a_restart_and_failures(tmp_path: Path) -> None:
    hook = Receiver(per_message=[500, 500])  # every message fails twice, then 200
    try:
        server = start_server(tmp_path, **WEBHOOKS)
        try:
            body = {"jobs": _jobs(100), "webhook": hook.url, "metadata": {"tape": 1}}
            created = httpx.post(f"{server.base_url}/v1/batches", json=body, timeout=60)
            assert created.status_code == 202, created.text
            batch = created.json()
            assert batch["size"] == 100
            queued_last = [j["id"] for j in batch["jobs"][-3:]]
            for job_id in queued_last:  # three are cancelled while queued: counts must say so
                httpx.post(f"{server.base_url}/v1/jobs/{job_id}/cancel", timeout=30)
            until(lambda: _batch(server.base_url, batch["id"]), lambda b: b["counts"]["completed"] >= 20, timeout_s=300)
        finally:
            assert server.stop() == 0  # SIGTERM mid-batch: running jobs finish, the rest stays queued
        restarted_at = time.monotonic()
        server = start_server(tmp_path, **WEBHOOKS)
        try:
            final = until(
                lambda: _batch(server.base_url, batch["id"]), lambda b: b["status"] == "completed", timeout_s=300
            )
            assert final["counts"] == {"queued": 0, "processing": 0, "completed": 97, "failed": 0, "cancelled": 3}
            assert final["progress"] == 100.0
            secret = _secret(server.env)
            got = hook.wait_for(lambda r: _delivered(r) >= 101, timeout_s=300)
            ok = [r for r in got if r.status == 200]
            per_job: dict[str, set[str]] = defaultdict(set)
            batch_messages = set()
            for request in ok:
                message = verify(secret, request)
                if message["type"] == "batch.completed":
                    batch_messages.add(request.headers["webhook-id"])
                    assert message["data"]["id"] == batch["id"] and message["data"]["status"] == "completed"
                    continue
                assert message["type"] == "job.completed"
                assert message["data"]["batch_id"] == batch["id"]
                per_job[message["data"]["id"]].add(request.headers["webhook-id"])
            assert set(per_job) == {j["id"] for j in batch["jobs"]}  # every job, and
            assert all(len(ids) == 1 for ids in per_job.values())  # exactly one message each
            assert len(batch_messages) == 1
            assert len([r for r in ok if r.headers["webhook-id"] in batch_messages]) == 1
            attempts = defaultdict(int)
            for request in got:
                attempts[request.headers["webhook-id"]] += 1
            assert all(n >= 3 for n in attempts.values())  # each failed twice before its 200
            assert any(r.at > restarted_at for r in ok)  # the restarted server delivered the rest
            log = httpx.get(f"{server.base_url}/v1/jobs/{queued_last[0]}/webhooks", timeout=30).json()["deliveries"]
            assert [a["status_code"] for a in log[0]["attempts"]] == [500, 500, 200]
            assert json.loads(ok[0].body)["data"]["url"].startswith("/v1/")
        finally:
            server.stop()
    finally:
        hook.close()


def _delivered(requests: list) -> int:
    return len({r.headers["webhook-id"] for r in requests if r.status == 200})


def _secret(env: dict[str, str]) -> str:
    cadenza = Path(sys.executable).with_name("cadenza")
    shown = subprocess.run(
        [str(cadenza), "config", "show", "--secrets", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(shown.stdout)["webhook_secret"]


def test_cadenza_batch_submits_a_jsonl_file_follows_it_and_downloads(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        lines = ["# two grooves and a melody", *(json.dumps(job) for job in _jobs(4)[1:]), ""]
        (tmp_path / "jobs.jsonl").write_text("\n".join(lines))
        cadenza = Path(sys.executable).with_name("cadenza")
        env = {**server.env, "CADENZA_URL": server.base_url}
        done = subprocess.run(
            [str(cadenza), "batch", "jobs.jsonl", "--download", "out"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 jobs" in done.stdout and "completed" in done.stdout
        files = sorted(p.name for p in (tmp_path / "out").iterdir())
        assert any(name.endswith(".mid") and name.startswith("j-dilla") for name in files), files
        assert any(name.endswith(".mid") and "melody" in name for name in files) or len(files) >= 3, files
        (tmp_path / "bad.jsonl").write_text('{"kind": "drums", "params": {"bars": 0}}\n')
        refused = subprocess.run(
            [str(cadenza), "batch", "bad.jsonl"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert refused.returncode == 1 and "jobs.0.params" in refused.stderr.replace("body.", "")
        (tmp_path / "broken.jsonl").write_text("{not json\n")
        broken = subprocess.run(
            [str(cadenza), "batch", "broken.jsonl"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert broken.returncode == 2 and "broken.jsonl:1" in broken.stderr
    finally:
        server.stop()
