"""The job API's end-to-end tests (``tests/e2e``: full HTTP flow with SSE, downloads with Range, cancel and
delete, the access log line; the sync and async clients; SSE resume) run unchanged against a Celery cluster:
``cadenza serve`` with ``executor: celery``, two ``cadenza worker`` processes, Redis and PostgreSQL."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Cluster, Redis, new_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import test_client_e2e  # noqa: E402
import test_server  # noqa: E402
from conftest import Server  # noqa: E402  (the e2e conftest: what its tests take)


@pytest.fixture(scope="module")
def server(pg_server: Path) -> Iterator[Server]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        redis = Redis(folder)
        cluster = Cluster(folder, redis, new_database(pg_server))
        try:
            api = cluster.start_api()
            cluster.start_worker()
            cluster.start_worker()
            cluster.wait_workers(2)
            yield Server(api.process, cluster.base_url, api.log, cluster.env)
        finally:
            cluster.close()
            redis.stop()


def test_full_flow_over_http(server: Server) -> None:
    test_server.test_full_flow_over_http(server)


def test_a_submit_logs_one_api_line_with_its_job(server: Server) -> None:
    test_server.test_a_submit_logs_one_api_line_with_its_job(server)


def test_module_docstring_example_runs(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    test_client_e2e.test_module_docstring_example_runs(server, tmp_path, monkeypatch)


def test_async_client_submits_waits_follows_and_downloads(server: Server, tmp_path: Path) -> None:
    test_client_e2e.test_async_client_submits_waits_follows_and_downloads(server, tmp_path)


def test_events_resume_with_last_event_id_after_a_dropped_connection(server: Server) -> None:
    test_client_e2e.test_events_resume_with_last_event_id_after_a_dropped_connection(server)
