"""Regression: a custom style of ``engines.drums.styles_path`` is accepted by ``POST /v1/drums`` (the API
validated without the app's settings and answered 422 "unknown producer_style"), through
``create_app(Settings(...))`` here and through ``cadenza serve --config`` in ``tests/e2e``."""

from __future__ import annotations

import os
from pathlib import Path

from _api_helpers import make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.settings import load_settings

STYLES = (
    "styles:\n"
    "  - name: Basement Shuffle\n"
    "    description: a custom style only this server knows\n"
    "    preferred_tempo_range: [88, 100]\n"
    "    conditioning: {hiphop: 1.0}\n"
)


def test_custom_style_through_create_app(tmp_path: Path) -> None:
    styles = tmp_path / "styles.yaml"
    styles.write_text(STYLES)
    settings = make_settings(tmp_path, engines={"drums": {"styles_path": styles}})
    with TestClient(create_app(settings, start_workers=False), raise_server_exceptions=False) as client:
        assert client.get("/v1/styles/basement-shuffle").status_code == 200
        created = client.post("/v1/drums", json={"producer_style": "Basement Shuffle", "bars": 1, "seed": 1})
        assert created.status_code == 202, created.text
        assert created.json()["params"]["producer_style"] == "Basement Shuffle"
        unknown = client.post("/v1/drums", json={"producer_style": "Nobody", "bars": 1})
        assert unknown.status_code == 422 and "Basement Shuffle" in unknown.json()["detail"]


def test_load_settings_leaves_the_environment_alone(tmp_path: Path) -> None:
    config = tmp_path / "cadenza.yaml"
    config.write_text(f"engines:\n  drums:\n    styles_path: {tmp_path / 'styles.yaml'}\nworkers: 3\n")
    before = dict(os.environ)
    settings = load_settings(config)
    assert settings.workers == 3 and settings.engine("drums").styles_path == tmp_path / "styles.yaml"
    assert dict(os.environ) == before and "CADENZA_CONFIG" not in os.environ
    assert load_settings().workers == 1  # the next call does not see the previous file
