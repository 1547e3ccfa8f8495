"""Problem+json for every error of the real app (no workers: jobs stay queued)."""

from __future__ import annotations

import uuid

import pytest
from _api_helpers import DRUMS, assert_problem
from fastapi.testclient import TestClient


def test_unknown_route_and_method_are_problems(idle_client: TestClient) -> None:
    assert_problem(idle_client.get("/v1/nothing-here"), 404)
    assert_problem(idle_client.delete("/v1/drums"), 405)
    assert idle_client.delete("/v1/drums").headers["Allow"] == "POST"
    # Regression: the 405 listed only the first route's methods (DELETE was missing).
    response = idle_client.put(f"/v1/jobs/{uuid.uuid4()}")
    assert_problem(response, 405)
    assert response.headers["Allow"] == "GET, DELETE"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/v1/jobs/cancel", "POST"),  # regression: GET, POST, DELETE (the /v1/jobs/{job_id} ones too)
        ("PUT", "/v1/jobs/cancel", "POST"),
        ("GET", "/v1/jobs/cancel", "POST"),  # regression: 422 from /v1/jobs/{job_id} ("cancel" is not a UUID)
        ("DELETE", "/v1/jobs/cancel", "POST"),
        ("OPTIONS", f"/v1/jobs/{uuid.uuid4()}", "GET, DELETE"),
        ("OPTIONS", "/v1/jobs", "GET"),
        ("PATCH", "/v1/batches", "GET, POST"),
        ("OPTIONS", "/v1/uploads/upl_" + "0" * 32, "GET, DELETE"),
        ("POST", "/studio/studio.js", "GET, HEAD"),  # a static file (regression: every method was listed)
    ],
)
def test_allow_lists_the_methods_of_the_path_matched(
    idle_client: TestClient, method: str, path: str, allow: str
) -> None:
    """A 405 (OPTIONS included) lists the methods of the path the request names, a concrete path before a
    templated one that also matches (``/v1/jobs/cancel`` is not a ``/v1/jobs/{job_id}``); each is served."""
    response = idle_client.request(method, path)
    assert_problem(response, 405)
    assert response.headers["Allow"] == allow
    for allowed in allow.split(", "):
        assert idle_client.request(allowed, path).status_code != 405, (allowed, path)


def test_unknown_and_malformed_job_ids(idle_client: TestClient) -> None:
    body = assert_problem(idle_client.get(f"/v1/jobs/{uuid.uuid4()}"), 404)
    assert body["type"] == "urn:cadenza:problem:job-not-found" and body["title"] == "Job Not Found"
    body = assert_problem(idle_client.get("/v1/jobs/not-a-uuid"), 422)
    assert body["errors"][0]["loc"] == ["path", "job_id"]
    assert_problem(idle_client.post(f"/v1/jobs/{uuid.uuid4()}/cancel"), 404)
    assert_problem(idle_client.delete(f"/v1/jobs/{uuid.uuid4()}"), 404)
    assert_problem(idle_client.get(f"/v1/jobs/{uuid.uuid4()}/events"), 404)
    assert_problem(idle_client.get(f"/v1/jobs/{uuid.uuid4()}/files/groove.mid"), 404)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"bars": 0}, "bars"),
        ({"bars": 33}, "bars"),
        ({"bars": "four"}, "bars"),
        ({"tempo": 59}, "tempo"),
        ({"tempo": 201}, "tempo"),
        ({"producer_style": "Nobody At All"}, "producer_style"),
        ({"producer_style": None}, "producer_style"),
        ({"time_signature": [4, 3]}, "time_signature"),
        ({"time_signature": [17, 4]}, "time_signature"),
        ({"humanize": "sometimes"}, "humanize"),
        ({"pattern_type": "solo"}, "pattern_type"),
        ({"temperature": 0.05}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 101}, "top_k"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"seed": -1}, "seed"),
        ({"seed": False}, "seed"),  # regression: booleans were read as 0 and 1 (Pydantic's lax mode)
        ({"bars": True}, "bars"),
        ({"tempo": True}, "tempo"),
        ({"time_signature": [True, 4]}, "time_signature"),
        ({"priority": True}, "priority"),
        ({"formats": ["ogg"]}, "formats"),
        ({"formats": ["midi", "json", "wav", "flac", "mp3", "midi"]}, "formats"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_submit_validation_rules(idle_client: TestClient, change: dict, field: str) -> None:
    payload = {**DRUMS, **change}
    body = assert_problem(idle_client.post("/v1/drums", json=payload), 422)
    assert any(field in error["loc"] for error in body["errors"]), body["errors"]
    assert all({"loc", "msg", "type"} <= set(error) for error in body["errors"])
    assert field in body["detail"]


def test_missing_field_and_malformed_json(idle_client: TestClient) -> None:
    body = assert_problem(idle_client.post("/v1/drums", json={"bars": 4}), 422)
    assert ["body", "producer_style"] in [e["loc"] for e in body["errors"]]
    response = idle_client.post("/v1/drums", content=b'{"bars": 4', headers={"Content-Type": "application/json"})
    assert_problem(response, 422)


def test_wrong_content_type_is_415(idle_client: TestClient) -> None:
    response = idle_client.post("/v1/drums", content=b"bars=4", headers={"Content-Type": "text/plain"})
    body = assert_problem(response, 415)
    assert "application/json" in body["detail"]
    assert_problem(idle_client.post("/v1/separations", json={"model": "htdemucs"}), 415)


def test_oversized_json_body_is_413(idle_client: TestClient) -> None:
    big = {**DRUMS, "producer_style": "x" * 10_000}  # max_body_bytes is 4096 in this app
    declared = assert_problem(idle_client.post("/v1/drums", json=big), 413)

    def chunks():  # no Content-Length: the limit is enforced while streaming
        yield b'{"producer_style": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}'

    response = idle_client.post("/v1/drums", content=chunks(), headers={"Content-Type": "application/json"})
    streamed = assert_problem(response, 413)
    # Regression: the same 413 had two problem types depending on chunked encoding.
    assert declared["type"] == streamed["type"] == "urn:cadenza:problem:content-too-large"
    assert declared["title"] == streamed["title"] == "Content Too Large"


def test_request_id_generated_echoed_and_sanitised(idle_client: TestClient) -> None:
    generated = idle_client.get("/health").headers["X-Request-ID"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    assert idle_client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    cleaned = idle_client.get("/health", headers={"X-Request-ID": 'a<b>c d"e'}).headers["X-Request-ID"]
    assert cleaned == "abcde"
    assert len(idle_client.get("/health", headers={"X-Request-ID": "z" * 500}).headers["X-Request-ID"]) == 128
    # error responses carry it too
    assert idle_client.get("/v1/nope", headers={"X-Request-ID": "req-9"}).headers["X-Request-ID"] == "req-9"


def test_internal_error_is_problem_without_traceback(idle_client: TestClient) -> None:
    app = idle_client.app

    def explode() -> None:
        raise RuntimeError("db password is hunter2")

    app.add_api_route("/v1/_test_explode", explode)
    response = idle_client.get("/v1/_test_explode", headers={"X-Request-ID": "boom-1"})
    body = assert_problem(response, 500)
    assert "hunter2" not in response.text
    assert "boom-1" in body["detail"]
    assert response.headers["X-Request-ID"] == "boom-1"


def test_list_query_validation(idle_client: TestClient) -> None:
    assert_problem(idle_client.get("/v1/jobs", params={"limit": 0}), 422)
    assert_problem(idle_client.get("/v1/jobs", params={"limit": 101}), 422)
    assert_problem(idle_client.get("/v1/jobs", params={"status": "sleeping"}), 422)
    assert_problem(idle_client.get("/v1/jobs", params={"cursor": "garbage!!"}), 422)


def _cursor(value: object) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "payload",
    [
        ["2020-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"],  # naive time
        ["0001-01-01T00:00:00+14:00", "00000000-0000-0000-0000-000000000000"],  # before year 1 in UTC
        ["9999-12-31T23:59:59-14:00", "00000000-0000-0000-0000-000000000000"],  # after year 9999 in UTC
        ["2020-01-01T00:00:00+00:00", 5],  # not a UUID
        ["2020-01-01T00:00:00+00:00", "not-a-uuid"],
        {"a": 1, "b": 2},
        "2020-01-01T00:00:00+00:00",
        [1, 2, 3],
    ],
)
def test_forged_list_cursor_is_422(idle_client: TestClient, payload: object) -> None:
    """Regression: naive and out-of-range cursor times escaped as StatementError/OverflowError (500)."""
    body = assert_problem(idle_client.get("/v1/jobs", params={"cursor": _cursor(payload)}), 422)
    assert "cursor" in body["detail"].lower()


@pytest.mark.parametrize("value", ["\u00b2", "-1", "1e3", "9223372036854775808", "0x10", "1.5"])
def test_last_event_id_header_must_be_a_63_bit_integer(idle_client: TestClient, value: str) -> None:
    """Regression: ``Last-Event-ID: \u00b2`` (isdigit() but not int()) was a 500."""
    url = "/v1/jobs/00000000-0000-0000-0000-000000000000/events"
    body = assert_problem(idle_client.get(url, headers={"Last-Event-ID": value.encode("latin-1")}), 422)
    assert "9223372036854775807" in body["detail"]


@pytest.mark.parametrize(
    ("prefer", "applied"),
    [
        ("wait=1e9", "wait=0.2"),  # regression: read as 1 s
        ("wait=" + "9" * 5000, "wait=0.2"),
        ("respond-async, wait=86400", "wait=0.2"),
        ('wait="30"', "wait=0.2"),
        ("wait=0.1", "wait=0.1"),
        ("wait=0", "wait=0"),
        ("wait=soon", None),  # not a number: ignored (RFC 7240 §2), no wait
        ("wait=-5", None),
        ("wait=inf", None),
        ("wait=", None),
    ],
)
def test_prefer_wait_is_capped_and_a_malformed_one_ignored(tmp_path, prefer: str, applied: str | None) -> None:
    from _api_helpers import make_settings

    from cadenza.api.app import create_app

    with TestClient(create_app(make_settings(tmp_path, prefer_wait_max_s=0.2), start_workers=False)) as client:
        created = client.post("/v1/drums", json=DRUMS, headers={"Prefer": prefer})
        assert created.status_code == 202, created.text  # no workers: still queued after the wait
        assert created.headers.get("Preference-Applied") == applied
        polled = client.get(created.headers["Location"], headers={"Prefer": prefer})
        assert polled.status_code == 200 and polled.headers.get("Preference-Applied") == applied


def test_last_event_id_query_must_fit_63_bits(idle_client: TestClient) -> None:
    """Regression: ``last_event_id=2**63`` answered 200, then the stream died on SQLite's OverflowError."""
    url = "/v1/jobs/00000000-0000-0000-0000-000000000000/events"
    assert_problem(idle_client.get(url, params={"last_event_id": 2**63}), 422)
    assert_problem(idle_client.get(url, params={"last_event_id": -1}), 422)
    assert_problem(idle_client.get(url, params={"last_event_id": 2**63 - 1}), 404)  # valid: the job is unknown


def test_openapi_documents_routes_examples_and_problems(idle_client: TestClient) -> None:
    spec = idle_client.get("/openapi.json").json()
    drums = spec["paths"]["/v1/drums"]["post"]
    body = drums["requestBody"]["content"]["application/json"]
    assert body["examples"]["default"]["value"]["producer_style"] == "J Dilla"
    # the request's fields plus the optional reference_midi upload id, nothing else accepted
    assert {"producer_style", "tempo", "reference_mode", "reference_midi"} <= set(body["schema"]["properties"])
    assert body["schema"]["additionalProperties"] is False and body["schema"]["required"] == ["producer_style"]
    for status in ("413", "415", "422", "429"):
        assert "application/problem+json" in drums["responses"][status]["content"]
    upload = spec["paths"]["/v1/separations"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["properties"]["file"]["format"] == "binary"
    for path in ("/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events", "/v1/jobs/{job_id}/files/{name}"):
        assert path in spec["paths"]
    assert "Problem" in spec["components"]["schemas"]


def test_files_of_an_unfinished_job_are_409_with_retry_after(idle_client: TestClient) -> None:
    """Regression: the 409 for a running job's download carried no Retry-After."""
    job = idle_client.post("/v1/drums", json={**DRUMS, "seed": 404}).json()  # no workers: stays queued
    response = idle_client.get(f"{job['url']}/files/groove.mid")
    assert_problem(response, 409)
    assert int(response.headers["Retry-After"]) > 0


def test_full_queue_answers_503_with_retry_after(tmp_path) -> None:
    from _api_helpers import make_settings

    from cadenza.api.app import create_app

    app = create_app(make_settings(tmp_path, max_queued_jobs=2), start_workers=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        for seed in (1, 2):
            assert client.post("/v1/drums", json={**DRUMS, "seed": seed}).status_code == 202
        response = client.post("/v1/drums", json={**DRUMS, "seed": 3})
        body = assert_problem(response, 503)
        assert body["title"] == "Queue Full" and "2 jobs are queued" in body["detail"]
        assert int(response.headers["Retry-After"]) > 0
        queued = client.get("/v1/jobs").json()["jobs"]
        assert len(queued) == 2 and sorted(j["queue_position"] for j in queued) == [1, 2]


BIG_INT = "9" * 5000  # over Python's 4,300-digit limit of int(str)


@pytest.mark.parametrize(
    "body",
    [
        "[" * 3000,  # deeper than the JSON decoder's recursion limit
        '{"producer_style": "J Dilla\\u0000"}',
    ],
)
def test_hostile_json_bodies_are_422(idle_client: TestClient, body: str) -> None:
    """Regression (found by hand beside the Schemathesis run): huge integers and deep nesting were 500s."""
    response = idle_client.post("/v1/drums", content=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code in (413, 422), response.text
    assert_problem(response, response.status_code)


def test_hostile_json_integer_is_422(tmp_path) -> None:
    from _api_helpers import make_settings

    from cadenza.api.app import create_app

    with TestClient(create_app(make_settings(tmp_path), start_workers=False)) as client:
        body = f'{{"producer_style": "J Dilla", "seed": {BIG_INT}}}'
        response = client.post("/v1/drums", content=body.encode(), headers={"Content-Type": "application/json"})
        assert "JSON" in assert_problem(response, 422)["detail"]
        form = {"params": (None, '{"seed": ' + BIG_INT + "}"), "file": ("s.wav", b"RIFF", "audio/wav")}
        assert_problem(client.post("/v1/separations", files=form), 422)


@pytest.mark.parametrize(
    "fields",
    [
        {"params": "[" * 3000},
        {"stems": "[" + "9" * 4400 + "]"},
        {"stems": "[" * 3000},
        {"stems": '["\\ud800"]'},  # a lone surrogate echoed in the error
        {"params": '{"two_stems": "\\ud800"}'},
        {"model": "hpss\x00"},
    ],
)
def test_hostile_form_fields_are_4xx_problems(idle_client: TestClient, fields: dict[str, str]) -> None:
    form = {name: (None, value) for name, value in fields.items()}
    response = idle_client.post("/v1/separations", files={**form, "file": ("song.wav", b"RIFF", "audio/wav")})
    assert 400 <= response.status_code < 500, response.text
    assert_problem(response, response.status_code)
    assert response.content.isascii()


def test_multipart_boundary_over_256_bytes_is_400(idle_client: TestClient) -> None:
    boundary = "a" * 300
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--{boundary}--\r\n'.encode()
    for path in ("/v1/uploads", "/v1/separations"):
        response = idle_client.post(
            path, content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        assert_problem(response, 400)


def test_last_event_id_of_5000_digits_is_422(idle_client: TestClient) -> None:
    url = f"/v1/jobs/{uuid.uuid4()}/events"
    assert_problem(idle_client.get(url, headers={"Last-Event-ID": BIG_INT}), 422)


def test_nul_in_a_list_filter_or_a_part_type_never_reaches_the_database(idle_client: TestClient) -> None:
    """Regression (PostgreSQL): NUL in ``kind`` or in a part's Content-Type was a DataError (500)."""
    body = assert_problem(idle_client.get("/v1/jobs", params={"kind": "a\x00b"}), 422)
    assert "drums" in body["detail"]
    body = (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="x.wav"\r\n'
        b"Content-Type: audio/\x00wav\r\n\r\nRIFF0000\r\n--b0undary--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    uploaded = idle_client.post("/v1/uploads", content=body, headers=headers)
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["media_type"] == "application/octet-stream"
