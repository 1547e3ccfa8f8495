"""``/docs`` and ``/redoc`` render in headless Chromium with every non-loopback request sent to a dead
proxy (no internet): the rendered DOM holds the operations of the live server's OpenAPI document."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import Server, chromium_path  # noqa: E402


def _render(chromium: str, url: str, profile: Path) -> str:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--proxy-server=http://127.0.0.1:9",  # nothing listens there: any outside request fails;
        # loopback (the server under test) bypasses a proxy by default in Chromium
        "--virtual-time-budget=30000",  # let the page's scripts run and fetch /openapi.json
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize(("page", "rendered"), [("/docs", "opblock"), ("/redoc", "operation/submit_drums")])
def test_docs_render_without_network(server: Server, tmp_path: Path, page: str, rendered: str) -> None:
    dom = _render(chromium_path(), server.base_url + page, tmp_path / "profile")
    assert rendered in dom, dom[:2000]
    assert "/v1/drums" in dom
