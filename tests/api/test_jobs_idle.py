"""Job routes against the real service with no workers (jobs stay queued until cancelled)."""

from __future__ import annotations

import json
import time

from _api_helpers import DRUMS, assert_problem, read_sse
from fastapi.testclient import TestClient


def submit(client: TestClient, **change: object) -> dict:
    response = client.post("/v1/drums", json={**DRUMS, **change})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    return job


def test_submit_get_and_links(idle_client: TestClient) -> None:
    job = submit(idle_client)
    assert job["status"] == "queued" and job["kind"] == "drums"
    assert job["params"]["producer_style"] == "J Dilla"
    assert job["url"] == f"/v1/jobs/{job['id']}"
    assert job["links"]["events"] == f"/v1/jobs/{job['id']}/events"
    again = idle_client.get(job["url"]).json()
    assert again["id"] == job["id"] and again["status"] == "queued"


def test_files_of_queued_then_cancelled_job(idle_client: TestClient) -> None:
    job = submit(idle_client, seed=2)
    assert_problem(idle_client.get(f"{job['url']}/files/groove.mid"), 409)
    cancelled = idle_client.post(f"{job['url']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert idle_client.post(f"{job['url']}/cancel").json()["status"] == "cancelled"  # idempotent
    assert_problem(idle_client.get(f"{job['url']}/files/groove.mid"), 410)


def test_delete_removes_the_job(idle_client: TestClient) -> None:
    job = submit(idle_client, seed=3)
    response = idle_client.delete(job["url"])
    assert response.status_code == 204 and response.content == b""
    assert_problem(idle_client.get(job["url"]), 404)
    assert_problem(idle_client.delete(job["url"]), 404)


def test_idempotency_key(idle_client: TestClient) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = idle_client.post("/v1/drums", json={**DRUMS, "seed": 4}, headers=headers)
    second = idle_client.post("/v1/drums", json={**DRUMS, "seed": 4}, headers=headers)
    assert first.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second.headers.get("Idempotent-Replayed") == "true"
    conflict = idle_client.post("/v1/drums", json={**DRUMS, "seed": 5}, headers=headers)
    assert_problem(conflict, 422)
    assert_problem(idle_client.post("/v1/drums", json=DRUMS, headers={"Idempotency-Key": "k" * 300}), 422)


def test_prefer_wait_times_out_with_202(idle_client: TestClient) -> None:
    started = time.monotonic()
    response = idle_client.post("/v1/drums", json={**DRUMS, "seed": 6}, headers={"Prefer": "wait=1"})
    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "wait=1"
    assert time.monotonic() - started >= 0.9


def test_list_filters_and_cursor_paging(idle_client: TestClient) -> None:
    ids = [submit(idle_client, seed=100 + i)["id"] for i in range(5)]
    idle_client.post(f"/v1/jobs/{ids[0]}/cancel")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "kind": "drums", **({"cursor": cursor} if cursor else {})}
        page = idle_client.get("/v1/jobs", params=params).json()
        assert len(page["jobs"]) <= 2
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in ids] == list(reversed(ids))  # newest first
    cancelled = idle_client.get("/v1/jobs", params={"status": "cancelled", "limit": 100}).json()["jobs"]
    assert ids[0] in [job["id"] for job in cancelled]
    assert all(job["status"] == "cancelled" for job in cancelled)
    assert idle_client.get("/v1/jobs", params={"kind": "separation"}).json()["jobs"] == []


def test_events_stream_ends_after_final_status_and_replays(idle_client: TestClient) -> None:
    job = submit(idle_client, seed=7)
    idle_client.post(f"{job['url']}/cancel")
    events = read_sse(idle_client, f"{job['url']}/events")
    assert len(events) >= 2
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    last = json.loads(events[-1]["data"])
    assert events[-1]["event"] == "status" and last["data"]["status"] == "cancelled"
    replay = read_sse(idle_client, f"{job['url']}/events", headers={"Last-Event-ID": str(ids[0])})
    assert [int(e["id"]) for e in replay] == ids[1:]
    replay_q = read_sse(idle_client, f"{job['url']}/events?last_event_id={ids[0]}")
    assert [int(e["id"]) for e in replay_q] == ids[1:]
    assert_problem(idle_client.get(f"{job['url']}/events", headers={"Last-Event-ID": "x"}), 422)


def test_models_routes_without_pool(idle_client: TestClient) -> None:
    listing = idle_client.get("/v1/models").json()
    assert listing["count"] == len(listing["models"]) >= 1
    model = listing["models"][0]
    assert {"name", "engine", "version", "licence", "data_source", "weights_present", "loaded"} <= set(model)
    assert model["loaded"] is None  # no local pool
    assert idle_client.get(f"/v1/models/{model['name']}").json()["name"] == model["name"]
    assert_problem(idle_client.get("/v1/models/no-such-model"), 404)
    assert_problem(idle_client.post(f"/v1/models/{model['name']}/load"), 409)
    assert_problem(idle_client.post(f"/v1/models/{model['name']}/explode"), 422)


def test_styles(idle_client: TestClient) -> None:
    listing = idle_client.get("/v1/styles").json()
    assert listing["count"] == len(listing["styles"]) > 0
    first = listing["styles"][0]
    assert {"name", "model_id", "description", "preferred_tempo_range", "humanization"} <= set(first)
    dilla = idle_client.get("/v1/styles/j dilla").json()
    assert dilla["name"] == "J Dilla"
    body = assert_problem(idle_client.get("/v1/styles/nobody"), 404)
    assert "J Dilla" in body["detail"]


def test_health_ready_metrics(idle_client: TestClient) -> None:
    assert idle_client.get("/health").json() == {"status": "ok"}
    ready = idle_client.get("/ready")
    body = ready.json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["disk"]["ok"] is True
    assert ready.status_code == (200 if all(c["ok"] for c in body["checks"].values()) else 503)
    metrics = idle_client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'cadenza_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert "cadenza_queue_depth" in text
    assert 'route="/v1/jobs/{job_id}"' in text
