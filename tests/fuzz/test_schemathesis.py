"""Schemathesis over the whole OpenAPI document of the real app, in-process (ASGI), auth off and on.

Every operation of ``/openapi.json`` is fuzzed through Schemathesis' examples, coverage and fuzzing phases
(positive and negative data), then a short stateful run follows the links Schemathesis infers between
operations (submit -> get/cancel/delete/events, upload -> get/delete), so real ids are exercised too.
Checks: no 5xx, and every answer conforms to the document (status code documented, content type,
response schema). Bounded and deterministic: fixed seed, ``derandomize=True``, a few dozen examples per
operation, no example database. The app runs without workers (jobs stay queued), with generous rate and
queue limits so 429s and 503s hide nothing, and ``prefer_wait_max_s`` capped so ``Prefer: wait=N`` cannot
stall a run.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from cadenza.api.app import create_app
from cadenza.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from _api_helpers import make_settings  # noqa: E402  (the API tests' settings helper)

SEED = 20240601
MAX_EXAMPLES = 50
"""Fuzzing-phase examples per operation (the examples and coverage phases add their own, fixed sets)."""
STATEFUL_EXAMPLES = 40
STATEFUL_STEPS = 10
HYPOTHESIS = {"derandomize": True, "deadline": None, "database": None}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@contextmanager
def _without_cadenza_env() -> Iterator[None]:
    """No CADENZA_* variable of the developer's shell reaches the settings (nor the document built at import)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("CADENZA_")}
    for key in saved:
        del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)


def _settings(tmp: Path, **overrides: Any) -> Settings:
    """The API tests' settings (``tests/api/_api_helpers.make_settings``) with generous limits, so 429s
    and the overload guard's 503s hide nothing (jobs stay queued: no workers), and short long-polls."""
    limits = {"rate_limit": "100000/minute", "max_queued_jobs": 100_000, "prefer_wait_max_s": 0.1}
    with _without_cadenza_env():
        return make_settings(tmp, **(limits | overrides))


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "request-timeout": 30,
            "generation": {"deterministic": True, "database": "none", "max-examples": MAX_EXAMPLES},
            # An event stream of a live job never ends: keep its first event, or what came within 5 s.
            "operations": [
                {"include-path": "/v1/jobs/{job_id}/events", "max-stream-events": 1, "request-timeout": 5},
            ],
        }
    )


def _document(*, auth: bool) -> dict[str, Any]:
    """The app's OpenAPI document (building the app touches no database or file: its lifespan does)."""
    return create_app(_settings(Path("/nonexistent"), auth_enabled=auth), start_workers=False).openapi()


# With auth on, the document declares the bearer scheme on every non-public operation. Each fixture
# asserts that its live app serves exactly the document its tests were generated from.
DOCUMENTS = {False: _document(auth=False), True: _document(auth=True)}
# Schemathesis edits the dict it is given (inferred links), so each schema gets its own copy.
schema_auth_off = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENTS[False]), config=_config())
schema_auth_on = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENTS[True]), config=_config())


@dataclass
class Target:
    app: FastAPI
    auth: bool
    headers: dict[str, str]


def _target(tmp: Path, *, auth: bool) -> Iterator[Target]:
    app = create_app(_settings(tmp, auth_enabled=auth), start_workers=False)
    try:
        with asgi.get_client(app) as client:  # starts the lifespan; Schemathesis keeps it for every call
            assert client.get("/openapi.json").json() == DOCUMENTS[auth]
            headers: dict[str, str] = {}
            if auth:
                secret, _ = app.state.service.keys.create("fuzzer")
                headers["Authorization"] = f"Bearer {secret}"
            yield Target(app, auth, headers)
    finally:
        asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def auth_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from _target(tmp_path_factory.mktemp("auth-off"), auth=False)


@pytest.fixture(scope="module")
def auth_on(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from _target(tmp_path_factory.mktemp("auth-on"), auth=True)


def _validate(case: schemathesis.Case, response: schemathesis.Response, target: Target) -> None:
    case.validate_response(response, checks=CHECKS, headers=target.headers)


def _call(case: schemathesis.Case, target: Target) -> None:
    response = case.call(app=target.app, headers=target.headers)
    _validate(case, response, target)


@settings(max_examples=MAX_EXAMPLES, **HYPOTHESIS)
@schema_auth_off.parametrize()
def test_operation_auth_off(case: schemathesis.Case, auth_off: Target) -> None:
    _call(case, auth_off)


@settings(max_examples=MAX_EXAMPLES, **HYPOTHESIS)
@schema_auth_on.parametrize()
def test_operation_auth_on(case: schemathesis.Case, auth_on: Target) -> None:
    _call(case, auth_on)


def _delete_all_jobs(target: Target) -> None:
    service = target.app.state.service
    while jobs := service.list(limit=100)[0]:
        for job in jobs:
            service.delete(job.id)


def _run_stateful(target: Target) -> None:
    document = copy.deepcopy(DOCUMENTS[target.auth])
    base = schemathesis.openapi.from_dict(document, config=_config()).as_state_machine()

    class Machine(base):  # type: ignore[valid-type,misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"app": target.app, "headers": target.headers}

        def validate_response(self, response: schemathesis.Response, case: schemathesis.Case, **_: Any) -> None:
            _validate(case, response, target)

        def teardown(self) -> None:
            # Each scenario starts from no jobs: what `GET /v1/jobs` lists feeds the next steps' data, and
            # Hypothesis replays scenarios, so leftovers of an earlier one would change what it draws.
            _delete_all_jobs(target)
            super().teardown()

    _delete_all_jobs(target)
    Machine.run(settings=settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS, **HYPOTHESIS))


def test_stateful_auth_off(auth_off: Target) -> None:
    _run_stateful(auth_off)


def test_stateful_auth_on(auth_on: Target) -> None:
    _run_stateful(auth_on)
