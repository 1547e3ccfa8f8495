"""POST /v1/jobs/{id}/retry (a new job like a failed or cancelled one, linked both ways) and POST /v1/jobs/cancel
(bulk, by status and kind; the admin key when auth is on)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _api_helpers import DRUMS, assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.client import CadenzaClient
from cadenza.engines.melody.engine import example_seed

ADMIN = "admin-secret-for-retry-tests"


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, workers=0)  # jobs stay queued: cancelled ones are retried
    with TestClient(create_app(settings, start_workers=False), raise_server_exceptions=False) as client:
        yield client


def test_a_cancelled_job_is_retried_with_its_params_and_options_linked_both_ways(client: TestClient) -> None:
    body = {**DRUMS, "seed": 5, "priority": 2, "metadata": {"run": 1}}
    old = client.post("/v1/drums", json=body).json()
    assert_problem(client.post(f"/v1/jobs/{old['id']}/retry"), 409)  # queued: nothing to retry
    client.post(f"/v1/jobs/{old['id']}/cancel")
    retried = client.post(f"/v1/jobs/{old['id']}/retry")
    assert retried.status_code == 201, retried.text
    new = retried.json()
    assert retried.headers["location"] == f"/v1/jobs/{new['id']}"
    assert new["status"] == "queued" and new["id"] != old["id"]
    assert (new["kind"], new["params"], new["priority"], new["metadata"]) == (
        old["kind"],
        old["params"],
        2,
        {"run": 1},
    )
    assert new["retry_of"] == old["id"]
    assert client.get(f"/v1/jobs/{old['id']}").json()["retried_by"] == new["id"]
    assert CadenzaClient(http=client).retry(old["id"])["retry_of"] == old["id"]  # and again, from the client
    assert_problem(client.post("/v1/jobs/00000000-0000-0000-0000-000000000000/retry"), 404)


def test_inputs_come_back_from_their_upload_and_a_gone_file_is_a_409(client: TestClient, tmp_path) -> None:
    seed = example_seed(tmp_path).read_bytes()
    upload = client.post("/v1/uploads", files={"file": ("phrase.mid", seed, "audio/midi")}).json()
    by_reference = client.post("/v1/melodies", json={"bars": 6, "seed_midi": upload["id"]}).json()
    inline = client.post("/v1/melodies", data={"bars": "6"}, files={"seed_midi": ("p.mid", seed, "audio/midi")}).json()
    for job in (by_reference, inline):
        client.post(f"/v1/jobs/{job['id']}/cancel")  # a cancelled job's own copy of its input is removed
    retried = client.post(f"/v1/jobs/{by_reference['id']}/retry")
    assert retried.status_code == 201, retried.text
    assert retried.json()["inputs"]["seed_midi"]["sha256"] == by_reference["inputs"]["seed_midi"]["sha256"]
    gone = assert_problem(client.post(f"/v1/jobs/{inline['id']}/retry"), 409)
    assert "seed_midi" in gone["detail"] and "submit the request again" in gone["detail"]


def test_bulk_cancel_by_kind_and_status(client: TestClient) -> None:
    drums = [client.post("/v1/drums", json={**DRUMS, "seed": i}).json()["id"] for i in range(3)]
    melody = client.post("/v1/melodies", json={"bars": 4}).json()["id"]
    answer = client.post("/v1/jobs/cancel", json={"kind": "drums", "status": "queued"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["count"] == 3 and set(answer.json()["ids"]) == set(drums)
    assert all(client.get(f"/v1/jobs/{i}").json()["status"] == "cancelled" for i in drums)
    assert client.get(f"/v1/jobs/{melody}").json()["status"] == "queued"
    assert client.post("/v1/jobs/cancel", json={"kind": "drums"}).json()["count"] == 0
    assert_problem(client.post("/v1/jobs/cancel", json={"kind": "polka"}), 422)
    assert_problem(client.post("/v1/jobs/cancel", json={"status": "completed"}), 422)
    assert client.post("/v1/jobs/cancel", json={}).json()["ids"] == [melody]


def test_bulk_cancel_needs_the_admin_key_when_auth_is_on(tmp_path) -> None:
    settings = make_settings(tmp_path, auth_enabled=True, admin_key=ADMIN)
    with TestClient(create_app(settings, start_workers=False), raise_server_exceptions=False) as client:
        secret, _ = client.app.state.service.keys.create("dave")
        mine = client.post("/v1/drums", json=DRUMS, headers={"Authorization": f"Bearer {secret}"}).json()
        denied = client.post("/v1/jobs/cancel", json={}, headers={"Authorization": f"Bearer {secret}"})
        assert_problem(denied, 403)
        done = client.post("/v1/jobs/cancel", json={}, headers={"Authorization": f"Bearer {ADMIN}"}).json()
        assert done["ids"] == [mine["id"]]
