"""Fixtures of the platform tests: the ``echo`` test engine (``tests/platform/echo_engine``) as a plugin."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the tests import echo_engine; spawned workers get it through PYTHONPATH
    sys.path.insert(0, str(HERE))

from cadenza.settings import Settings  # noqa: E402

PLUGINS = ["echo_engine"]


@pytest.fixture(autouse=True)
def _plugin_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in [k for k in os.environ if k.startswith("CADENZA_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    yield


def platform_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp / 'cadenza.db'}",
        "files_dir": tmp / "files",
        "models_dir": tmp / "models",
        "workers": 1,
        "min_free_disk_mb": 0,
        "log_format": "json",
        "rate_limit": "10000/minute",
        "shutdown_timeout_s": 5,
        "plugins": PLUGINS,
    }
    values.update(overrides)
    return Settings(**values)
