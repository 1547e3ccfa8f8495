"""Accepted means it runs: requests generated from each engine's own OpenAPI schema (Schemathesis' positive
data: every field, boundary values, any Unicode in text fields, JSON and multipart bodies) are submitted to
the real app with a real worker; every request answered 2xx must give a job that completes on its first
attempt. Every check a worker would fail on is made at submit, so a job that then fails is a bug.

Bounded: a fixed number of examples per engine, derandomized, no example database. Tracks are the costly
engine (up to 300 s of audio each), so they get fewer examples.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from conftest import platform_settings
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.python import asgi

from cadenza.api.app import create_app
from cadenza.engines import registry

FINAL = ("completed", "failed", "cancelled")
EXAMPLES = {"drums": 80, "melody": 80, "track": 12, "separation": 10}
"""Generated requests per engine (the echo test engine and any other: 10)."""
JOB_OPTIONS = ("webhook", "webhook_events_filter")
"""Job options checked at submit that never reach an engine (fuzzed by tests/fuzz): left out."""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    tmp = tmp_path_factory.mktemp("accepted")
    settings = platform_settings(tmp, plugins=[], max_queued_jobs=100_000, prefer_wait_max_s=0.1)
    app = create_app(settings)
    try:
        with asgi.get_client(app):  # runs the lifespan (the worker pool) for every call below
            yield app
    finally:
        asgi.shutdown_lifespans()


def _wait_final(app: FastAPI, job_id: str) -> dict[str, Any]:
    """Long-polls the job (``Prefer: wait``) until it is final; generous for a loaded 2-core machine."""
    client = asgi.get_client(app)
    deadline = time.monotonic() + 900
    job = client.get(f"/v1/jobs/{job_id}").json()
    while job["status"] not in FINAL and time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=60"}).json()
    return job


def _submit_generated(
    app: FastAPI,
    operation: Any,
    kind: str,
    steer: dict[str, list[Any]],
    accepted: list[tuple[str, str, Any]],
    refused: dict[str, int],
) -> None:
    """Submits ``EXAMPLES[kind]`` requests Schemathesis generates from the operation's schema; the fields of
    ``steer`` take one of its values (fields whose valid values are data, not schema: the style catalogue), so
    the requests reach the engines instead of stopping at an unknown name."""

    @settings(
        max_examples=EXAMPLES.get(kind, 10),
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(media_type="application/json"), data=st.data())
    def submit(case: schemathesis.Case, data: st.DataObject) -> None:
        if isinstance(case.body, dict):
            for name, values in steer.items():
                case.body[name] = data.draw(st.sampled_from(values), label=name)
            for name in JOB_OPTIONS:
                case.body.pop(name, None)
        response = case.call(app=app)
        assert response.status_code < 500, (kind, case.body, response.text[:500])
        if response.status_code in (200, 201, 202):
            accepted.append((kind, response.json()["id"], case.body))
        else:
            refused[kind] = refused.get(kind, 0) + 1

    submit()


def test_every_accepted_generated_request_completes(live: FastAPI) -> None:
    document = asgi.get_client(live).get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(copy.deepcopy(document))
    accepted: list[tuple[str, str, Any]] = []
    refused: dict[str, int] = {}
    styles = [style["name"] for style in asgi.get_client(live).get("/v1/styles").json()["styles"]]
    steer = {"drums": {"producer_style": styles}}
    for spec in registry.for_plugins().engines():
        operation = schema[f"/v1/{spec.route}"]["POST"]
        _submit_generated(live, operation, spec.kind, steer.get(spec.kind, {}), accepted, refused)
    kinds = {kind for kind, _, _ in accepted}
    assert {"drums", "melody", "track"} <= kinds, (kinds, refused)
    failed = []
    for kind, job_id, body in accepted:
        job = _wait_final(live, job_id)
        if job["status"] != "completed" or job["attempts"] != 1:
            failed.append((kind, body, job["status"], job["attempts"], job.get("error")))
    print(f"accepted {len(accepted)} generated requests, refused {refused}")
    assert not failed, failed
