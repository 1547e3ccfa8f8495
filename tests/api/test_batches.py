"""POST /v1/batches: all-or-none validation with the index and field of every error, one transaction, counts,
SSE, cancel (also bulk by batch), upload references, idempotency, isolation between keys, client and OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _api_helpers import DRUMS, assert_problem, make_settings, read_sse
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.client import CadenzaClient, CadenzaError
from cadenza.engines.melody.engine import example_seed
from cadenza.jobs import JobService

ADMIN = "admin-key-for-batch-tests"


@pytest.fixture
def idle(tmp_path: Path) -> Iterator[TestClient]:
    """No workers: the jobs of a batch stay queued."""
    with TestClient(create_app(make_settings(tmp_path), start_workers=False), raise_server_exceptions=False) as c:
        yield c


def drums(seed: int, **extra) -> dict:
    return {"kind": "drums", "params": {**DRUMS, "seed": seed}, **extra}


def test_one_invalid_job_creates_nothing_and_every_error_names_its_index_and_field(idle: TestClient) -> None:
    body = {
        "jobs": [
            drums(1),
            {"kind": "lute", "params": {}},
            {"kind": "drums", "params": {**DRUMS, "bars": 999}},
            drums(4, priority=99),
            {"kind": "melodies", "params": {"bars": 4}},
            {"kind": "melody", "params": {"bars": 4}, "inputs": {"seed_midi": "upl_" + "0" * 32}},
            drums(7),
        ]
    }
    problem = assert_problem(idle.post("/v1/batches", json=body), 422)
    locs = [tuple(e["loc"]) for e in problem["errors"]]
    assert ("body", "jobs", 3, "priority") in locs  # options are checked with the structure
    assert "jobs" in problem["detail"]
    body["jobs"][3] = drums(4)
    problem = assert_problem(idle.post("/v1/batches", json=body), 422)
    locs = [tuple(e["loc"]) for e in problem["errors"]]
    assert ("body", "jobs", 1, "kind") in locs and ("body", "jobs", 4, "kind") in locs
    assert ("body", "jobs", 2, "params", "bars") in locs
    assert ("body", "jobs", 5, "inputs", "seed_midi") in locs
    assert {loc[2] for loc in locs} == {1, 2, 4, 5}
    assert problem["detail"].startswith("4 of 7 jobs are invalid, so none was created")
    assert idle.get("/v1/jobs").json()["jobs"] == []
    assert idle.get("/v1/batches").json()["batches"] == []


def test_booleans_are_not_numbers_anywhere_in_a_batch(idle: TestClient) -> None:
    """Regression: ``"priority": true`` (batch or job) and ``"seed": false`` (params) were read as 1 and 0."""
    problem = assert_problem(idle.post("/v1/batches", json={"jobs": [drums(1)], "priority": True}), 422)
    assert [e["loc"] for e in problem["errors"]] == [["body", "priority"]]
    assert problem["errors"][0]["type"] == "int_type" and "boolean" in problem["errors"][0]["msg"]
    body = {"jobs": [drums(1, priority=False), {"kind": "drums", "params": {**DRUMS, "seed": False}}]}
    problem = assert_problem(idle.post("/v1/batches", json=body), 422)
    assert [e["loc"] for e in problem["errors"]] == [["body", "jobs", 0, "priority"]]
    body["jobs"][0] = drums(1)
    problem = assert_problem(idle.post("/v1/batches", json=body), 422)
    assert [(e["loc"], e["type"]) for e in problem["errors"]] == [(["body", "jobs", 1, "params", "seed"], "int_type")]
    assert idle.get("/v1/jobs").json()["jobs"] == []


def test_limits_and_shapes_are_422(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, max_batch_jobs=3), start_workers=False)) as client:
        assert_problem(client.post("/v1/batches", json={"jobs": []}), 422)
        too_many = assert_problem(client.post("/v1/batches", json={"jobs": [drums(i) for i in range(4)]}), 422)
        assert "at most 3" in too_many["detail"]
        create = client.get("/openapi.json").json()["paths"]["/v1/batches"]["post"]
        assert create["requestBody"]["content"]["application/json"]["schema"]["properties"]["jobs"]["maxItems"] == 3
        assert_problem(client.post("/v1/batches", json={"jobs": [drums(1)], "colour": "red"}), 422)
        assert_problem(client.post("/v1/batches", json=[drums(1)]), 422)
        assert_problem(client.post("/v1/batches", content=b"{", headers={"content-type": "application/json"}), 422)
        assert client.post("/v1/batches", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
        assert client.get("/v1/jobs").json()["jobs"] == []


def test_a_batch_is_created_whole_with_options_inherited_and_cancelled_as_one(idle: TestClient) -> None:
    body = {
        "jobs": [drums(1), drums(2, priority=5, metadata={"take": 2}), {"kind": "melody", "params": {"bars": 4}}],
        "metadata": {"session": "s1"},
        "priority": -2,
        "webhook": "https://hooks.example.com/cadenza",
    }
    response = idle.post("/v1/batches", json=body)
    assert response.status_code == 202, response.text
    batch = response.json()
    assert response.headers["location"] == f"/v1/batches/{batch['id']}" == batch["url"]
    assert batch["size"] == 3 and batch["status"] == "processing" and batch["metadata"] == {"session": "s1"}
    assert batch["counts"] == {"queued": 3, "processing": 0, "completed": 0, "failed": 0, "cancelled": 0}
    assert [j["kind"] for j in batch["jobs"]] == ["drums", "drums", "melody"]
    assert [j["index"] for j in batch["jobs"]] == [0, 1, 2]
    jobs = [idle.get(f"/v1/jobs/{j['id']}").json() for j in batch["jobs"]]
    assert [j["priority"] for j in jobs] == [-2, 5, -2]
    assert jobs[1]["metadata"] == {"take": 2} and jobs[0]["metadata"] is None
    assert {j["batch_id"] for j in jobs} == {batch["id"]}
    assert {j["webhook"] for j in jobs} == {"https://hooks.example.com/cadenza"}
    listed = idle.get("/v1/jobs", params={"batch": batch["id"]}).json()["jobs"]
    assert {j["id"] for j in listed} == {j["id"] for j in jobs}
    other = idle.post("/v1/drums", json=DRUMS).json()
    cancelled = idle.post(f"/v1/batches/{batch['id']}/cancel").json()
    assert cancelled["counts"]["cancelled"] == 3 and cancelled["status"] == "completed"
    assert idle.get(f"/v1/jobs/{other['id']}").json()["status"] == "queued"  # not in the batch
    assert_problem(idle.get("/v1/batches/6f1c2e1e-5a35-4a8e-9d7b-0b8b0f7c2a11"), 404)
    assert_problem(idle.get("/v1/batches/not-a-uuid"), 422)


def test_bulk_cancel_takes_a_batch_filter(idle: TestClient) -> None:
    first = idle.post("/v1/batches", json={"jobs": [drums(1), drums(2)]}).json()
    second = idle.post("/v1/batches", json={"jobs": [drums(3)]}).json()
    done = idle.post("/v1/jobs/cancel", json={"batch": first["id"]}).json()
    assert done["count"] == 2 and set(done["ids"]) == {j["id"] for j in first["jobs"]}
    assert idle.get(f"/v1/batches/{second['id']}").json()["counts"]["queued"] == 1


def test_an_unusable_upload_is_named_in_the_batch_error(idle: TestClient) -> None:
    """The probe's rejection of an input goes through the single submit's path and keeps its place and kind."""
    upload = idle.post("/v1/uploads", files={"file": ("phrase.mid", b"not a MIDI file", "audio/midi")}).json()
    body = {"jobs": [drums(1), {"kind": "melody", "params": {"bars": 4}, "inputs": {"seed_midi": upload["id"]}}]}
    problem = assert_problem(idle.post("/v1/batches", json=body), 422)
    (error,) = problem["errors"]
    assert tuple(error["loc"]) == ("body", "jobs", 1, "inputs", "seed_midi") and error["type"] == "upload_rejected"
    assert idle.get("/v1/jobs").json()["jobs"] == []


def test_inputs_by_upload_reference_and_idempotency(idle: TestClient, tmp_path: Path) -> None:
    seed = example_seed(tmp_path).read_bytes()
    upload = idle.post("/v1/uploads", files={"file": ("phrase.mid", seed, "audio/midi")}).json()
    body = {
        "jobs": [
            {"kind": "melody", "params": {"bars": 6}, "inputs": {"seed_midi": upload["id"]}},
            {"kind": "melody", "params": {"bars": 6, "seed_midi": upload["id"]}},  # as the JSON route takes it
        ]
    }
    key = {"Idempotency-Key": "batch-1"}
    first = idle.post("/v1/batches", json=body, headers=key)
    assert first.status_code == 202, first.text
    replay = idle.post("/v1/batches", json=body, headers=key)
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    for item in first.json()["jobs"]:
        job = idle.get(f"/v1/jobs/{item['id']}").json()
        assert job["inputs"]["seed_midi"]["upload_id"] == upload["id"]
    changed = {"jobs": body["jobs"][:1]}
    assert_problem(idle.post("/v1/batches", json=changed, headers=key), 422)
    wrong_input = {"jobs": [{"kind": "drums", "params": DRUMS, "inputs": {"audio": upload["id"]}}]}
    problem = assert_problem(idle.post("/v1/batches", json=wrong_input), 422)
    assert problem["errors"][0]["loc"] == ["body", "jobs", 0, "inputs", "audio"]
    assert len(idle.get("/v1/jobs").json()["jobs"]) == 2


def test_a_batch_runs_to_completion_with_counts_sse_and_the_client(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, workers=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        client = CadenzaClient(http=http)
        bad_bars = {"kind": "drums", "params": {**DRUMS, "bars": 0}}
        with pytest.raises(CadenzaError) as refused:
            client.batch([{"kind": "drums", "params": DRUMS}, bad_bars])
        assert refused.value.status == 422
        jobs = [drums(i) for i in range(5)] + [{"kind": "melody", "params": {"bars": 4, "seed": 3}}]
        batch = client.batch(jobs, metadata={"n": 6})
        events = read_sse(http, f"/v1/batches/{batch['id']}/events")
        views = [json.loads(e["data"]) for e in events]
        assert all(e["event"] == "batch" for e in events)
        ids = [int(e["id"]) for e in events]
        assert ids == sorted(ids)  # each view is newer than the last
        last = views[-1]
        assert last["status"] == "completed" and last["progress"] == 100.0
        assert last["counts"] == {"queued": 0, "processing": 0, "completed": 6, "failed": 0, "cancelled": 0}
        assert last["completed_at"] is not None
        assert client.wait_batch(batch["id"])["counts"]["completed"] == 6
        # a reconnect with the last id gets the final view and the end of the stream at once
        again = read_sse(http, f"/v1/batches/{batch['id']}/events", headers={"Last-Event-ID": events[-1]["id"]})
        assert json.loads(again[-1]["data"])["status"] == "completed"


def test_another_keys_batches_are_404(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auth_enabled=True, admin_key=ADMIN)
    service = JobService(settings)
    alice, bob = service.keys.create("alice")[0], service.keys.create("bob")[0]
    service.dispose()
    as_alice, as_bob = {"Authorization": f"Bearer {alice}"}, {"Authorization": f"Bearer {bob}"}
    with TestClient(create_app(settings, start_workers=False)) as client:
        batch = client.post("/v1/batches", json={"jobs": [drums(1)]}, headers=as_alice).json()
        assert client.get(f"/v1/batches/{batch['id']}", headers=as_alice).status_code == 200
        for method, path in [
            ("GET", f"/v1/batches/{batch['id']}"),
            ("GET", f"/v1/batches/{batch['id']}/events"),
            ("GET", f"/v1/batches/{batch['id']}/webhooks"),
            ("POST", f"/v1/batches/{batch['id']}/cancel"),
            ("GET", f"/v1/jobs/{batch['jobs'][0]['id']}/webhooks"),
        ]:
            assert_problem(client.request(method, path, headers=as_bob), 404)
        assert client.get("/v1/batches", headers=as_bob).json()["batches"] == []
        assert len(client.get("/v1/batches", headers={"Authorization": f"Bearer {ADMIN}"}).json()["batches"]) == 1
        assert client.get(f"/v1/batches/{batch['id']}", headers=as_alice).json()["counts"]["queued"] == 1


def test_the_openapi_documents_batches_with_examples(idle: TestClient) -> None:
    paths = idle.get("/openapi.json").json()["paths"]
    create = paths["/v1/batches"]["post"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert {"jobs", "webhook", "webhook_events_filter", "metadata", "priority"} <= set(schema["properties"])
    assert "202" in create["responses"] and "422" in create["responses"]
    assert "/v1/batches/{batch_id}/events" in paths and "/v1/jobs/{job_id}/webhooks" in paths
    # the documented example is a batch the server takes (regression: its params named a field `style`)
    example = create["requestBody"]["content"]["application/json"]["examples"]["default"]["value"]
    created = idle.post("/v1/batches", json=example)
    assert created.status_code == 202, created.text
