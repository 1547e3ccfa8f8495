"""Hot reload: POST /v1/admin/reload applies rate limit, retention, CORS and catalogues, names what
needs a restart, changes nothing when the new configuration is invalid, and is for the admin only."""

from __future__ import annotations

from pathlib import Path

import yaml
from _api_helpers import DRUMS, assert_problem
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.settings import load_settings

ADMIN = {"Authorization": "Bearer reload-admin"}
STYLE = {
    "description": "test",
    "preferred_tempo_range": [88, 100],
    "conditioning": {"hiphop": 1.0},
}


def _write(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_reload_applies_what_it_can_and_names_the_rest(tmp_path: Path) -> None:
    styles, config = tmp_path / "styles.yaml", tmp_path / "cadenza.yaml"
    _write(styles, {"styles": [{"name": "Basement Shuffle", **STYLE}]})
    base = {
        "database_url": f"sqlite:///{tmp_path / 'cadenza.db'}",
        "files_dir": str(tmp_path / "files"),
        "models_dir": str(tmp_path / "models"),
        "min_free_disk_mb": 0,
        "auth_enabled": True,
        "admin_key": "reload-admin",
        "rate_limit": "1000/minute",
        "engines": {"drums": {"styles_path": str(styles)}},
    }
    _write(config, base)
    app = create_app(load_settings(config), start_workers=False, settings_source=lambda: load_settings(config))
    with TestClient(app, raise_server_exceptions=False) as client:
        secret, _ = app.state.service.keys.create("user")
        user = {"Authorization": f"Bearer {secret}"}
        assert client.get("/v1/jobs", headers=user).headers["RateLimit-Limit"] == "1000"
        assert (
            "access-control-allow-origin" not in client.get("/health", headers={"Origin": "https://a.example"}).headers
        )

        _write(config, {**base, "rate_limit": "50/minute", "cors_origins": ["https://a.example"], "workers": 3})
        _write(styles, {"styles": [{"name": "Basement Shuffle", **STYLE}, {"name": "Attic Swing", **STYLE}]})
        assert_problem(client.post("/v1/admin/reload", headers=user), 403)
        response = client.post("/v1/admin/reload", headers=ADMIN)
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["changed"] == {
            "rate_limit": ["1000/minute", "50/minute"],
            "cors_origins": [[], ["https://a.example"]],
        }
        assert report["needs_restart"] == ["workers"]
        assert report["catalogues"] == {
            "drums.styles": {"added": ["Attic Swing"], "removed": []},
            "melody.presets": {"added": [], "removed": []},
            "track.genres": {"added": [], "removed": []},
        }
        # In effect at once: the rate limit, CORS, the new style; the worker count is untouched.
        assert client.get("/v1/jobs", headers=user).headers["RateLimit-Limit"] == "50"
        cors = client.get("/health", headers={"Origin": "https://a.example"})
        assert cors.headers["access-control-allow-origin"] == "https://a.example"
        job = client.post("/v1/drums", json={**DRUMS, "producer_style": "attic swing"}, headers=user)
        assert job.status_code == 202, job.text
        assert app.state.settings.workers != 3

        config.write_text("rate_limit: [not, a, limit]\n", encoding="utf-8")
        body = assert_problem(client.post("/v1/admin/reload", headers=ADMIN), 422)
        assert "Nothing was reloaded" in body["detail"] and "rate_limit" in body["detail"]
        assert client.get("/v1/jobs", headers=user).headers["RateLimit-Limit"] == "50"  # unchanged
        _write(config, base)
        _write(styles, {"styles": [{"name": "Basement Shuffle", **{**STYLE, "conditioning": {}}}]})
        body = assert_problem(client.post("/v1/admin/reload", headers=ADMIN), 422)  # an invalid style
        assert "Basement Shuffle" in body["detail"]
        assert client.get("/v1/jobs", headers=user).headers["RateLimit-Limit"] == "50"
