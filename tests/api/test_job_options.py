"""Job-level options (``priority``, ``metadata``, ``webhook``, ``webhook_events_filter``) on every submit route
and input form: validated, stored, echoed in the job view, part of the idempotency fingerprint, shown in the
OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from _api_helpers import assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.engines.melody.engine import example_seed


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("options"), workers=0)
    with TestClient(create_app(settings, start_workers=False), raise_server_exceptions=False) as client:
        yield client


def test_json_submits_take_priority_and_metadata_and_echo_them(client: TestClient) -> None:
    low = client.post("/v1/drums", json={"producer_style": "J Dilla", "bars": 2, "seed": 1}).json()
    body = {
        "producer_style": "J Dilla",
        "bars": 2,
        "seed": 2,
        "priority": 7,
        "metadata": {"order_id": "A-1001", "tags": ["x"]},
    }
    high = client.post("/v1/drums", json=body)
    assert high.status_code == 202, high.text
    job = high.json()
    assert job["priority"] == 7 and job["metadata"] == {"order_id": "A-1001", "tags": ["x"]}
    assert "priority" not in job["params"] and "metadata" not in job["params"]
    again = client.get(f"/v1/jobs/{job['id']}").json()
    assert again["metadata"] == job["metadata"] and again["priority"] == 7
    assert again["queue_position"] == 1  # the higher priority runs first, though submitted later
    assert client.get(f"/v1/jobs/{low['id']}").json()["queue_position"] == 2
    assert low["metadata"] is None and low["priority"] == 0


def test_multipart_form_fields_and_the_params_part_take_them_too(client: TestClient, tmp_path) -> None:
    seed = example_seed(tmp_path).read_bytes()
    fields = {"bars": "6", "priority": "-3", "metadata": json.dumps({"user": 42})}
    form = client.post("/v1/melodies", data=fields, files={"seed_midi": ("a.mid", seed, "audio/midi")})
    assert form.status_code == 202, form.text
    assert form.json()["priority"] == -3 and form.json()["metadata"] == {"user": 42}
    part = json.dumps({"bars": 6, "priority": 4, "metadata": {"user": 43}})
    via_params = client.post("/v1/melodies", files={"params": (None, part), "seed_midi": ("a.mid", seed, "audio/midi")})
    assert via_params.status_code == 202, via_params.text
    assert via_params.json()["priority"] == 4 and via_params.json()["metadata"] == {"user": 43}
    as_json = client.post("/v1/melodies", json={"bars": 4, "metadata": {"k": "v"}})
    assert as_json.status_code == 202 and as_json.json()["metadata"] == {"k": "v"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"priority": 11}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": {"blob": "x" * 5000}}, "metadata"),
        ({"webhook": "http://example.com/hook"}, "webhook"),  # plain http to a host not allowed
        ({"webhook": "https://example.com/hook", "webhook_events_filter": []}, "webhook_events_filter"),
    ],
)
def test_bad_options_are_422_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    problem = assert_problem(client.post("/v1/drums", json={"producer_style": "J Dilla", "bars": 2, **body}), 422)
    assert any(error["loc"][-1] == field for error in problem["errors"]), problem
    text = assert_problem(client.post("/v1/separations", files={"metadata": (None, "{not json")}), 422)
    assert any(error["loc"][-1] == "metadata" for error in text["errors"])


def test_options_are_part_of_the_idempotency_fingerprint(client: TestClient) -> None:
    headers = {"Idempotency-Key": "options-1"}
    first = client.post(
        "/v1/drums", json={"producer_style": "J Dilla", "bars": 2, "metadata": {"a": 1}}, headers=headers
    )
    replay = client.post(
        "/v1/drums", json={"producer_style": "J Dilla", "bars": 2, "metadata": {"a": 1}}, headers=headers
    )
    assert replay.json()["id"] == first.json()["id"] and replay.headers["Idempotent-Replayed"] == "true"
    assert_problem(
        client.post("/v1/drums", json={"producer_style": "J Dilla", "bars": 2, "metadata": {"a": 2}}, headers=headers),
        422,
    )


def test_every_submit_route_shows_the_options_in_its_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    submits = [
        op for path, ops in paths.items() for m, op in ops.items() if op.get("operationId", "").startswith("submit_")
    ]
    assert len(submits) == 4
    for operation in submits:
        for media_type, content in operation["requestBody"]["content"].items():
            properties = content["schema"]["properties"]
            names = {"priority", "metadata", "webhook", "webhook_events_filter"}
            assert names <= set(properties), (operation["operationId"], media_type)
            assert properties["priority"]["maximum"] == 10 and properties["priority"]["minimum"] == -10
