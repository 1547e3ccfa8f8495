"""Helpers of the API tests (imported by name: tests run with --import-mode=importlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fastapi.testclient import TestClient

from cadenza.settings import Settings

DRUMS = {"producer_style": "J Dilla", "bars": 1, "tempo": 90, "seed": 1}


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp / 'cadenza.db'}",
        "files_dir": tmp / "files",
        "models_dir": tmp / "models",
        "workers": 0,
        "min_free_disk_mb": 0,
        "log_format": "json",
        "shutdown_timeout_s": 5,
        "rate_limit": "10000/minute",
    }
    values.update(overrides)
    return Settings(**values)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["type"].startswith("urn:cadenza:problem:")
    assert unquote(body["instance"]) == unquote(response.request.url.path)
    assert "Traceback" not in response.text
    return body


def read_sse(client: TestClient, url: str, headers: dict | None = None) -> list[dict]:
    events, current = [], {}
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                current[key] = value.strip()
    return events
