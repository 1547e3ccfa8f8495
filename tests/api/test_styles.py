"""``/v1/styles`` with a user styles file (``engines.drums.styles_path``): merged over the built-in catalog and
re-read when the file changes (the route keeps the parsed catalog between requests)."""

from __future__ import annotations

import os
from pathlib import Path

from _api_helpers import make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app


def write_styles(path: Path, description: str) -> None:
    path.write_text(
        "styles:\n"
        "  - name: Test Shuffle\n"
        f"    description: {description}\n"
        "    preferred_tempo_range: [90, 120]\n"
        "    conditioning: {blues: 1.0}\n",
        encoding="utf-8",
    )


def test_user_styles_file_is_served_and_reloaded_when_changed(tmp_path: Path) -> None:
    styles_file = tmp_path / "styles.yaml"
    write_styles(styles_file, "first version")
    app = create_app(make_settings(tmp_path, engines={"drums": {"styles_path": styles_file}}), start_workers=False)
    with TestClient(app) as client:
        assert client.get("/v1/styles/test-shuffle").json()["description"] == "first version"
        names = [style["name"] for style in client.get("/v1/styles").json()["styles"]]
        assert "J Dilla" in names and "Test Shuffle" in names

        write_styles(styles_file, "second version")
        stat = styles_file.stat()
        os.utime(styles_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert client.get("/v1/styles/Test Shuffle").json()["description"] == "second version"
