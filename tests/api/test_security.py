"""API keys (401, revoked keys, per-key visibility, admin key) and rate limits (429)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _api_helpers import DRUMS, assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app

ADMIN = "admin-secret-for-tests"


@pytest.fixture(scope="module")
def auth_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("auth"), auth_enabled=True, admin_key=ADMIN)
    with TestClient(create_app(settings, start_workers=False), raise_server_exceptions=False) as client:
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_public_routes_need_no_key(auth_client: TestClient) -> None:
    assert auth_client.get("/health").status_code == 200
    assert auth_client.get("/ready").status_code in (200, 503)
    assert auth_client.get("/openapi.json").status_code == 200
    assert auth_client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}, bearer("not-a-real-key")],
)
def test_missing_or_wrong_key_is_401(auth_client: TestClient, headers: dict[str, str]) -> None:
    for response in (
        auth_client.get("/v1/jobs", headers=headers),
        auth_client.post("/v1/drums", json=DRUMS, headers=headers),
        auth_client.get("/metrics", headers=headers),
    ):
        assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_jobs_are_private_to_their_key(auth_client: TestClient) -> None:
    service = auth_client.app.state.service
    secret_a, key_a = service.keys.create("alice")
    secret_b, _ = service.keys.create("bob")
    created = auth_client.post("/v1/drums", json=DRUMS, headers=bearer(secret_a))
    assert created.status_code == 202
    job = created.json()
    assert job["owner"] == key_a.id
    assert auth_client.get(job["url"], headers=bearer(secret_a)).status_code == 200
    assert_problem(auth_client.get(job["url"], headers=bearer(secret_b)), 404)
    assert_problem(auth_client.post(f"{job['url']}/cancel", headers=bearer(secret_b)), 404)
    assert_problem(auth_client.delete(job["url"], headers=bearer(secret_b)), 404)
    assert_problem(auth_client.get(f"{job['url']}/files/groove.mid", headers=bearer(secret_b)), 404)
    listed_b = auth_client.get("/v1/jobs", headers=bearer(secret_b)).json()["jobs"]
    assert job["id"] not in [j["id"] for j in listed_b]
    listed_admin = auth_client.get("/v1/jobs", headers=bearer(ADMIN)).json()["jobs"]
    assert job["id"] in [j["id"] for j in listed_admin]
    assert auth_client.get(job["url"], headers=bearer(ADMIN)).status_code == 200

    service.keys.revoke(key_a.id)
    assert_problem(auth_client.get(job["url"], headers=bearer(secret_a)), 401)


@pytest.fixture(scope="module")
def limited_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("rate"), rate_limit="3/minute")
    with TestClient(create_app(settings, start_workers=False), raise_server_exceptions=False) as client:
        yield client


def test_rate_limit_headers_and_429(limited_client: TestClient) -> None:
    remaining = []
    for _ in range(3):
        response = limited_client.get("/v1/jobs")
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == "3"
        remaining.append(int(response.headers["RateLimit-Remaining"]))
        assert 0 <= int(response.headers["RateLimit-Reset"]) <= 60
    assert remaining == [2, 1, 0]
    blocked = limited_client.post("/v1/drums", json=DRUMS)
    assert_problem(blocked, 429)
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    assert blocked.headers["RateLimit-Remaining"] == "0"
    # probes are never limited
    assert limited_client.get("/health").status_code == 200
    assert limited_client.get("/ready").status_code in (200, 503)


def test_cors_origins_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, cors_origins=["https://studio.example"])
    with TestClient(create_app(settings, start_workers=False)) as client:
        preflight = client.options(
            "/v1/drums",
            headers={"Origin": "https://studio.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://studio.example"
        simple = client.get("/v1/jobs", headers={"Origin": "https://studio.example"})
        assert simple.headers["access-control-allow-origin"] == "https://studio.example"
        assert "X-Request-ID" in simple.headers["access-control-expose-headers"]
        other = client.get("/v1/jobs", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_failed_key_attempts_are_rate_limited(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auth_enabled=True, rate_limit="3/minute")
    with TestClient(create_app(settings, start_workers=False)) as client:
        for _ in range(3):
            assert_problem(client.get("/v1/jobs", headers=bearer("guess")), 401)
        blocked = client.get("/v1/jobs", headers=bearer("guess-again"))
        assert_problem(blocked, 429)
        assert int(blocked.headers["Retry-After"]) >= 1


def test_model_load_and_unload_need_the_admin_key(auth_client: TestClient) -> None:
    """Regression: any API key could load or unload models for the whole server."""
    secret, _ = auth_client.app.state.service.keys.create("carol")
    for action in ("load", "unload"):
        body = assert_problem(auth_client.post(f"/v1/models/hpss/{action}", headers=bearer(secret)), 403)
        assert "admin key" in body["detail"]
        # The admin passes the check; this app runs no local workers, hence 409.
        assert_problem(auth_client.post(f"/v1/models/hpss/{action}", headers=bearer(ADMIN)), 409)
    assert auth_client.get("/v1/models/hpss", headers=bearer(secret)).status_code == 200  # reading stays open


def test_openapi_declares_the_key_scheme_and_where_it_is_needed(auth_client: TestClient, tmp_path: Path) -> None:
    spec = auth_client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["apiKey"]["description"],
    }
    assert spec["paths"]["/v1/drums"]["post"]["security"] == [{"apiKey": []}]
    assert spec["paths"]["/v1/jobs/{job_id}"]["delete"]["security"] == [{"apiKey": []}]
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert "403" in spec["paths"]["/v1/models/{name}/{action}"]["post"]["responses"]
    for path in ("/v1/uploads", "/v1/separations"):  # malformed multipart bodies are 400
        assert "400" in spec["paths"][path]["post"]["responses"], path
    header = next(p for p in spec["paths"]["/v1/drums"]["post"]["parameters"] if p["name"] == "Idempotency-Key")
    assert header["schema"]["maxLength"] == 255  # a parameter is never null: no anyOf
    open_app = create_app(make_settings(tmp_path), start_workers=False)
    with TestClient(open_app) as client:
        open_spec = client.get("/openapi.json").json()
    assert "apiKey" in open_spec["components"]["securitySchemes"]
    assert "security" not in open_spec["paths"]["/v1/drums"]["post"]  # auth off: no key needed
