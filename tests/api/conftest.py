"""Shared fixtures of the API tests: real settings on tmp_path (SQLite, files), the real app."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _api_helpers import make_settings  # noqa: E402

from cadenza.api.app import create_app  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _clean_env() -> Iterator[None]:
    """No CADENZA_* variable of the developer's shell leaks into the tests."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("CADENZA_")}
    for key in saved:
        del os.environ[key]
    yield
    os.environ.update(saved)


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api")


@pytest.fixture(scope="module")
def idle_client(module_tmp: Path) -> Iterator[TestClient]:
    """The real app with a real database but no workers: jobs stay queued."""
    app = create_app(make_settings(module_tmp, max_body_bytes=4096, max_upload_bytes=64 * 1024), start_workers=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
