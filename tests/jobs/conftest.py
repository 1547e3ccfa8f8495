"""Fixtures of the job-layer tests: real SQLite in ``tmp_path``, real spawned workers, a test engine."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cadenza.jobs import JobService, WorkerPool
from cadenza.settings import Settings

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the tests import jobs_helpers; spawned workers import the test engines
    sys.path.insert(0, str(HERE))

from jobs_helpers import make_settings  # noqa: E402


@pytest.fixture(autouse=True)
def test_engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the test engines (kinds ``testjob`` and ``testretry``, the ``plugins`` of ``make_settings``)
    importable here and in spawned workers."""
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def service(settings: Settings) -> Iterator[JobService]:
    svc = JobService(settings)
    yield svc
    svc.dispose()


@pytest.fixture
def start_pool() -> Iterator[Callable[..., WorkerPool]]:
    """``start_pool(settings, service)`` starts a pool that is stopped at the end of the test."""
    pools: list[WorkerPool] = []

    def _start(settings: Settings, service: JobService | None = None) -> WorkerPool:
        pool = WorkerPool(settings, service)
        pool.start()
        pools.append(pool)
        return pool

    yield _start
    for pool in pools:
        pool.stop()
