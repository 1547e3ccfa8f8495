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
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import settings
from schemathesis.checks import CHECKS as CHECK_REGISTRY
from schemathesis.checks import load_all_checks, negative_data_rejection, positive_data_acceptance
from schemathesis.python import asgi

from cadenza.api.app import create_app
from cadenza.engines import registry
from cadenza.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from _api_helpers import make_settings  # noqa: E402  (the API tests' settings helper)

SEED = 20240601
MAX_EXAMPLES = 50
"""Fuzzing-phase examples per operation (the examples and coverage phases add their own, fixed sets)."""
STATEFUL_EXAMPLES = 40
STATEFUL_STEPS = 10
HYPOTHESIS = {"derandomize": True, "deadline": None, "database": None}


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


def _catalogue_fields(node: Any) -> set[str]:
    """Names of the properties the document marks ``x-catalogue`` (values from a catalogue users edit)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for name, value in (node.get("properties") or {}).items():
            if isinstance(value, dict) and "x-catalogue" in value:
                found.add(name)
        for value in node.values():
            found |= _catalogue_fields(value)
    elif isinstance(node, list):
        for value in node:
            found |= _catalogue_fields(value)
    return found


CATALOGUE_FIELDS = _catalogue_fields(DOCUMENTS[False])
PROBLEM = "urn:cadenza:problem:"
BEYOND_THE_SCHEMA = {
    f"{PROBLEM}idempotency-key-reused": "state: a key already used with another body (IETF Idempotency-Key "
    "draft, section 2.7: 422)",
    f"{PROBLEM}request-cannot-be-served": "an engine's own rules (EngineInputError): names from catalogues users "
    "edit (styles, genres), quick.mid's size, a model's weights present",
    f"{PROBLEM}invalid-cursor": "a cursor is an opaque token a previous page gave",
}
"""Problem types of 422s that a schema-valid request may get, and why JSON Schema cannot say so."""
FIELDS_BEYOND_THE_SCHEMA = {
    "webhook": "the address policy: private, loopback and the server's own addresses in any spelling (WHATWG "
    "host parsing), a name that resolves to one",
    "file": "a file's content: empty, not decodable audio",
    "params": "a batch job's engine rules (EngineInputError, as request-cannot-be-served for one job)",
    **{name: "a name from a catalogue users edit (x-catalogue: styles, presets, genres)" for name in CATALOGUE_FIELDS},
    **{name: "a file's content (decodable audio, a usable MIDI file), or an input another kind declares" for name in
       {i.name for spec in registry.for_plugins().engines() for i in spec.inputs}},
}  # fmt: skip
"""Fields whose 422s (every error of the problem at one of them) a schema-valid request may get, and why."""


ERRORS_BEYOND_THE_SCHEMA = {
    "string_nul": "NUL (U+0000) in text: PostgreSQL cannot store it, refused in every field at once",
}
"""Error types (``errors[].type``) a schema-valid request may get, and why."""


def _beyond_the_schema(response: Any) -> bool:
    """A 422 problem for one of the reasons above, or 410 Gone for what was there and was deleted (RFC 9110,
    section 15.5.11; Schemathesis expects 404 only)."""
    if response.status_code == 410:
        return True
    if response.status_code != 422:
        return False
    if not response.headers.get("content-type", [""])[0].startswith("application/problem+json") or not response.content:
        return False
    problem = response.json()
    if problem.get("type") in BEYOND_THE_SCHEMA:
        return True
    errors = problem.get("errors") or []
    if errors and all(
        str(e["loc"][-1]) in FIELDS_BEYOND_THE_SCHEMA or e.get("type") in ERRORS_BEYOND_THE_SCHEMA
        for e in errors
        if e.get("loc")
    ):
        return True
    # A multipart body with a file part does not carry the model's cross-field rules (``not``, ``if``/``then``:
    # Schemathesis 4.32 cannot generate them beside a binary part); its JSON body schema does.
    multipart = "multipart/form-data" in str(response.request.headers.get("content-type", ""))
    return multipart and bool(errors) and all(list(e.get("loc", [])) == ["body"] for e in errors)


def positive_data_acceptance_within_the_schema(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """Schemathesis' ``positive_data_acceptance``, except for 422s whose reason JSON Schema cannot state
    (:data:`BEYOND_THE_SCHEMA`, :data:`FIELDS_BEYOND_THE_SCHEMA`); any other 4xx to schema-valid data fails."""
    if _beyond_the_schema(response):
        return None
    return positive_data_acceptance(ctx, response, case)


def _mutation_did_not_reach_the_app(mutation: Any, response: Any, case: schemathesis.Case) -> bool:
    """A negative case's mutation that the request as sent does not carry: the API key the harness sends on
    every request put back where the case left it out, or an unexpected query parameter the transport
    dropped (requests drops one whose value is None or an empty list)."""
    location = getattr(mutation.parameter_location, "value", mutation.parameter_location)
    sent = response.request
    if location == "header" and "required" in mutation.keywords:
        return "authorization" in {name.lower() for name in sent.headers}
    if location == "query" and "additionalProperties" in mutation.keywords:
        declared = {parameter.name for parameter in case.operation.query}
        return set(parse_qs(urlsplit(sent.url).query, keep_blank_values=True)) <= declared
    return False


def negative_data_rejection_as_sent(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """Schemathesis' ``negative_data_rejection``, judged on the request as sent: a case none of whose
    mutations reached the app (:func:`_mutation_did_not_reach_the_app`) is a valid request, not a finding."""
    phase = getattr(case.meta, "phase", None)
    mutations = getattr(getattr(phase, "data", None), "mutations", None) or []
    if mutations and all(_mutation_did_not_reach_the_app(m, response, case) for m in mutations):
        return None
    return negative_data_rejection(ctx, response, case)


load_all_checks()
WRAPPED = {
    positive_data_acceptance: positive_data_acceptance_within_the_schema,
    negative_data_rejection: negative_data_rejection_as_sent,
}
CHECKS = [WRAPPED.get(check, check) for check in CHECK_REGISTRY.get_all()]
"""Every check Schemathesis has (its CLI's ``--checks all``), the two data checks as above."""


@dataclass
class Target:
    app: FastAPI
    auth: bool
    headers: dict[str, str]
    client: Any  # the app's in-process client: checks that send requests of their own use it


def _target(tmp: Path, *, auth: bool) -> Iterator[Target]:
    app = create_app(_settings(tmp, auth_enabled=auth), start_workers=False)
    try:
        with asgi.get_client(app) as client:  # starts the lifespan; Schemathesis keeps it for every call
            assert client.get("/openapi.json").json() == DOCUMENTS[auth]
            headers: dict[str, str] = {}
            if auth:
                secret, _ = app.state.service.keys.create("fuzzer")
                headers["Authorization"] = f"Bearer {secret}"
            yield Target(app, auth, headers, client)
    finally:
        asgi.shutdown_lifespans()


@pytest.fixture(autouse=True)
def _same_draws_wherever_it_runs() -> None:
    """Schemathesis draws some values with the global ``random`` (e.g. whether to reuse a value an earlier
    response gave): seeded here, the module draws the same cases alone and inside the whole suite."""
    random.seed(SEED)


@pytest.fixture(scope="module")
def auth_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from _target(tmp_path_factory.mktemp("auth-off"), auth=False)


@pytest.fixture(scope="module")
def auth_on(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from _target(tmp_path_factory.mktemp("auth-on"), auth=True)


def _validate(case: schemathesis.Case, response: schemathesis.Response, target: Target) -> None:
    transport = {"app": target.app, "base_url": "http://testserver"}
    case.validate_response(response, checks=CHECKS, headers=target.headers, transport_kwargs=transport)


def _call(case: schemathesis.Case, target: Target) -> None:
    # The app reaches the operation's schema too: checks that send requests of their own (ignored_auth,
    # use_after_free, …) pick their transport from it.
    case.operation.schema.app = target.app
    if case.query:
        # The transport (requests) drops a query parameter whose value is None, so a case whose violation is an
        # unexpected parameter would reach the app without it: send it empty instead.
        case.query = {name: "" if value is None else value for name, value in case.query.items()}
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
    schema = schemathesis.openapi.from_dict(document, config=_config())
    schema.app = target.app
    base = schema.as_state_machine()

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
