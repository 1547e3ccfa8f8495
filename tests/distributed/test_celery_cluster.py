"""The Celery executor with real parts: Redis, PostgreSQL, ``cadenza serve`` and two ``cadenza worker`` processes.

20 mixed jobs complete, each run once; routing puts a job only on a worker of its queue; SIGKILL of the worker
running a job → the job is re-queued and completes on a worker, or fails clearly, never stuck or run twice; a
Redis restart that loses every queued message → all jobs still complete; cancel reaches a remote worker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cadenza.client import CadenzaClient

from .conftest import Cluster, Redis, new_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_shared"))
from polling import until  # noqa: E402

DRUMS = {"producer_style": "J Dilla", "bars": 1, "tempo": 90}
# melody runs only on the "solo" queue, which only worker B serves; track on "gpu"; drums on "cpu"
QUEUES = '{"drums": "cpu", "melody": "solo", "track": "gpu", "separation": "gpu"}'


@pytest.fixture
def cluster(tmp_path: Path, redis_server: Redis, pg_server: Path):
    cluster = Cluster(tmp_path, redis_server, new_database(pg_server), queues=QUEUES)
    cluster.start_api()
    cluster.start_worker("cpu,gpu", name="worker-a")
    cluster.start_worker("cpu,gpu,solo", name="worker-b")
    cluster.wait_workers(2)
    yield cluster
    cluster.close()


def _worker_of(cluster: Cluster, job: dict) -> str:
    """The name of the worker whose process claimed the job last (its ``processing`` event names the process)."""
    claims = []
    with httpx.stream("GET", f"{cluster.base_url}/v1/jobs/{job['id']}/events", timeout=60) as events:
        for line in events.iter_lines():  # the stream of a running job stays open: stop at its last claim
            if line.startswith("data:") and '"worker"' in line:
                claims.append(json.loads(line[5:])["data"]["worker"])
                if job["attempts"] <= len(claims):
                    break
    pid = int(claims[-1].rpartition(":")[2])
    for worker in cluster.workers:
        if pid in worker.children() or pid == worker.process.pid:
            return worker.log.stem
    raise AssertionError(f"no worker runs pid {pid}")


def test_mixed_jobs_complete_once_and_route_by_queue(cluster: Cluster) -> None:
    with CadenzaClient(cluster.base_url) as client:
        ready = httpx.get(f"{cluster.base_url}/ready", timeout=30).json()
        assert ready["checks"]["broker"]["ok"] and ready["checks"]["workers"]["ok"]
        jobs = []
        for i in range(20):
            if i % 4 == 3:
                jobs.append(client.submit("melodies", {"bars": 2, "seed": i}))
            else:
                jobs.append(client.submit("drums", {**DRUMS, "seed": i}))
        done = [client.wait(job["id"], timeout_s=300) for job in jobs]
        assert [j["status"] for j in done] == ["completed"] * 20, [j.get("error") for j in done]
        assert all(j["attempts"] == 1 for j in done)  # each ran exactly once
        for job in done:
            if job["kind"] == "melody":
                assert _worker_of(cluster, job) == "worker-b"  # only worker B serves "solo"
        # a duplicated or redelivered message never runs a job twice: the worker's claim skips it
        from cadenza.jobs.celery_app import TASK_NAME, make_app
        from cadenza.settings import Settings

        sender = make_app(Settings(executor="celery", broker_url=cluster.redis.url, database_url="postgresql://x@y/z"))
        for _ in range(2):
            sender.send_task(TASK_NAME, args=[done[0]["id"]], queue="cpu")
        until(lambda: sum(w.logs().count("message skipped") for w in cluster.workers), lambda n: n >= 2)
        again = client.get(done[0]["id"])
        assert (again["attempts"], again["sequence"]) == (1, done[0]["sequence"])
        listed = subprocess.run(
            [str(Path(sys.executable).with_name("cadenza")), "workers"],
            env=cluster.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.count("cadenza-") == 2 and "solo" in listed.stdout
        metrics = httpx.get(f"{cluster.base_url}/metrics", timeout=30).text
        assert 'cadenza_broker_queue_depth{queue="solo"}' in metrics
        assert 'cadenza_queue_workers{queue="solo"} 1.0' in metrics
        assert 'cadenza_queue_workers{queue="cpu"} 2.0' in metrics


def test_sigkill_of_the_worker_running_a_job_requeues_it(cluster: Cluster) -> None:
    with CadenzaClient(cluster.base_url) as client:
        job = client.submit("tracks", {"prompt": "lo-fi hip hop, 84 bpm", "duration_s": 240, "seed": 1})
        running = until(lambda: client.get(job["id"]), lambda j: j["status"] == "processing")
        victim = _worker_of(cluster, running)
        [proc] = [w for w in cluster.workers if w.log.stem == victim]
        proc.kill_group()  # the whole worker host dies mid-job
        assert client.get(job["id"])["status"] == "processing"  # it was killed mid-job
        final = client.wait(job["id"], timeout_s=300)
        assert final["status"] in ("completed", "failed"), final
        if final["status"] == "completed":
            assert final["attempts"] == 2 and _worker_of(cluster, final) != victim
        else:
            assert final["error"]["type"] == "WorkerLost"


def test_a_redis_restart_that_loses_queued_messages_loses_no_job(cluster: Cluster) -> None:
    for worker in cluster.workers:
        assert worker.stop(60) == 0  # SIGTERM: a warm shutdown
    cluster.workers.clear()
    with CadenzaClient(cluster.base_url) as client:
        jobs = [client.submit("drums", {**DRUMS, "seed": i}) for i in range(6)]
        cluster.redis.restart()  # no persistence: the six messages are gone
        cluster.start_worker("cpu,gpu,solo", name="worker-c")
        done = [client.wait(job["id"], timeout_s=300) for job in jobs]
        assert [j["status"] for j in done] == ["completed"] * 6
        assert all(j["attempts"] == 1 for j in done)


def test_cancel_reaches_a_running_job_on_a_remote_worker(cluster: Cluster) -> None:
    with CadenzaClient(cluster.base_url) as client:
        job = client.submit("tracks", {"prompt": "ambient, 70 bpm", "duration_s": 240, "seed": 2})
        until(lambda: client.get(job["id"]), lambda j: j["status"] == "processing")
        client.cancel(job["id"])
        final = client.wait(job["id"], timeout_s=120)
        assert final["status"] == "cancelled"
        assert final["outputs"] == []


def test_the_readme_quick_start_runs_unchanged_against_the_cluster(cluster: Cluster) -> None:
    """The README's quick start (drums, reference groove, events, separation, uploads) with jobs on the workers."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
    from test_readme import quick_start_commands

    work = cluster.folder / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)  # the commands call .venv/bin/cadenza
    script = quick_start_commands().replace("http://127.0.0.1:8000", cluster.base_url)
    env = {**cluster.env, "CADENZA_EXECUTOR": "local"}  # the local CLI drums command
    done = subprocess.run(["bash", "-e", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert any(work.glob("j-dilla_89bpm_4bars_s42_*.mid")) and any(work.glob("*drums*.wav"))
    # the script's last separation is submitted without waiting: wait for every job to be final
    final = {"completed", "failed", "cancelled"}
    jobs = until(
        lambda: httpx.get(f"{cluster.base_url}/v1/jobs", params={"limit": 100}, timeout=30).json()["jobs"],
        lambda jobs: all(j["status"] in final for j in jobs),
    )
    assert len(jobs) >= 4 and all(j["status"] == "completed" for j in jobs), [j.get("error") for j in jobs]


def test_model_load_and_unload_reach_the_workers_of_the_engines_queue(cluster: Cluster) -> None:
    base = cluster.base_url
    loaded = httpx.post(f"{base}/v1/models/melody-transformer/load", timeout=120)
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["loaded"] is True
    assert httpx.get(f"{base}/v1/models/melody-transformer", timeout=30).json()["loaded"] is True
    cadenza = str(Path(sys.executable).with_name("cadenza"))
    listed = subprocess.run(
        [cadenza, "workers"], env={**cluster.env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in listed.stdout.splitlines() if "cadenza-" in line]
    with_model = [line for line in lines if "melody-transformer" in line]
    assert len(lines) == 2 and len(with_model) == 1 and "solo" in with_model[0]  # only worker B serves "solo"
    unloaded = httpx.post(f"{base}/v1/models/melody-transformer/unload", timeout=120)
    assert unloaded.status_code == 200 and unloaded.json()["loaded"] is False


def test_sigterm_on_a_worker_lets_its_running_job_finish(cluster: Cluster) -> None:
    with CadenzaClient(cluster.base_url) as client:
        job = client.submit("tracks", {"prompt": "boom bap, 90 bpm", "duration_s": 60, "seed": 3})
        running = until(lambda: client.get(job["id"]), lambda j: j["status"] == "processing")
        [proc] = [w for w in cluster.workers if w.log.stem == _worker_of(cluster, running)]
        proc.process.send_signal(signal.SIGTERM)  # Celery's warm shutdown
        final = client.wait(job["id"], timeout_s=300)
        assert final["status"] == "completed" and final["attempts"] == 1
        assert proc.process.wait(timeout=120) == 0
