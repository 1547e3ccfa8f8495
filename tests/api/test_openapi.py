"""The OpenAPI document: valid OpenAPI 3.1 whose every ``$ref`` resolves; every ``/v1`` JSON answer is
documented with an example, and the examples are real answers (they validate against the response models and
match what the routes return); what it says of fields and parameters (integers are not booleans, patterns,
enums) is what the server does."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _api_helpers import DRUMS, assert_problem, make_settings
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import BaseModel
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from cadenza.api import examples
from cadenza.api.app import create_app
from cadenza.api.deps import JobOut, JobPage
from cadenza.api.openapi import decimal_at_most
from cadenza.api.problems import Problem
from cadenza.api.routes.batches import BATCH_EXAMPLE
from cadenza.api.routes.jobs import MAX_EVENT_ID
from cadenza.api.routes.models import ModelList, ModelOut
from cadenza.engines import registry
from cadenza.engines.drums import examples as drums_examples
from cadenza.engines.drums.routes import StyleList, StyleOut
from cadenza.engines.drums.schema import DrumsRequest
from cadenza.engines.drums.styles import load_catalog
from cadenza.jobs.options import RESERVED_OPTION_NAMES
from cadenza.jobs.service import UPLOAD_ID_RE
from cadenza.settings import Settings

ENGINES = registry.for_plugins().engines()
GENERATED = examples.engine_examples(ENGINES)

MODEL_FACTS = ("name", "engine", "version", "description", "licence", "data_source")
"""Fields of a model entry that do not depend on the machine (weights folder, loaded state)."""


def _has_example(content: dict[str, Any], components: dict[str, Any]) -> bool:
    if "example" in content or content.get("examples"):
        return True
    schema = content.get("schema", {})
    if schema.get("examples") or "example" in schema:
        return True
    ref = schema.get("$ref", "")
    return bool(ref) and bool(components[ref.rsplit("/", 1)[-1]].get("examples"))


def test_every_v1_json_answer_has_an_example(idle_client: TestClient) -> None:
    document = idle_client.get("/openapi.json").json()
    components = document["components"]["schemas"]
    checked, missing = set(), []
    for path, operations in document["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                for media_type, content in answer.get("content", {}).items():
                    is_json = media_type == "application/json" or media_type.endswith("+json")
                    if not is_json or not (status.startswith("2") or media_type == "application/problem+json"):
                        continue
                    checked.add((method.upper(), path, status))
                    if not _has_example(content, components):
                        missing.append(f"{method.upper()} {path} {status} {media_type}")
    assert not missing, missing
    for operation in [
        ("POST", "/v1/drums", "202"),
        ("GET", "/v1/jobs", "200"),
        ("GET", "/v1/jobs/{job_id}", "200"),
        ("GET", "/v1/models", "200"),
        ("GET", "/v1/styles", "200"),
        ("GET", "/v1/jobs/{job_id}", "404"),
    ]:
        assert operation in checked


@pytest.mark.parametrize(
    ("model", "example"),
    [
        (JobOut, GENERATED["JobOut"]),
        (JobPage, GENERATED["JobPage"]),
        (ModelOut, GENERATED["ModelOut"]),
        (ModelList, GENERATED["ModelList"]),
        (StyleOut, drums_examples.STYLE),
        (StyleList, drums_examples.STYLE_LIST),
        (Problem, examples.PROBLEM_NOT_FOUND),
        (Problem, examples.PROBLEM_VALIDATION),
    ],
)
def test_example_validates_against_its_model(model: type[BaseModel], example: dict[str, Any]) -> None:
    assert model.model_validate(example).model_dump(mode="json", exclude_unset=True).keys() == example.keys()


def test_examples_match_the_real_engine_catalog_and_answers(idle_client: TestClient) -> None:
    job_example = drums_examples.JOB
    assert DrumsRequest.model_validate(job_example["params"]).model_dump(mode="json") == job_example["params"]
    assert load_catalog(None).get("J Dilla").model_dump(mode="json") == drums_examples.STYLE
    infos = {info.name: info for spec in ENGINES for info in spec.models(Settings().models_dir)}
    for example in GENERATED["ModelList"]["models"]:
        real = dataclasses.asdict(infos[example["name"]])
        assert {key: example[key] for key in MODEL_FACTS} == {key: real[key] for key in MODEL_FACTS}

    created = idle_client.post("/v1/drums", json=DRUMS)
    assert created.status_code == 202, created.text
    real_job = idle_client.get(created.headers["location"]).json()
    assert real_job.keys() == job_example.keys()
    assert real_job["links"].keys() == job_example["links"].keys()
    assert real_job["params"].keys() == job_example["params"].keys()
    page = idle_client.get("/v1/jobs").json()
    assert page.keys() == GENERATED["JobPage"].keys()
    assert idle_client.get("/v1/styles").json().keys() == drums_examples.STYLE_LIST.keys()
    assert idle_client.get("/v1/models").json()["models"][0].keys() == GENERATED["ModelOut"].keys()
    missing = idle_client.get(f"/v1/jobs/{job_example['id']}")
    assert missing.status_code == 404
    assert missing.json().keys() == examples.PROBLEM_NOT_FOUND.keys()
    assert missing.json()["title"] == examples.PROBLEM_NOT_FOUND["title"]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@pytest.mark.parametrize("auth", [False, True], ids=["auth-off", "auth-on"])
def test_the_document_is_valid_openapi_and_every_ref_resolves(tmp_path: Path, auth: bool) -> None:
    """Regression: the batch body referenced ``#/components/schemas/BatchJobIn``, which the document lacked (its
    definition stayed in the body schema's ``$defs``); openapi-spec-validator alone did not notice."""
    document = create_app(make_settings(tmp_path, auth_enabled=auth), start_workers=False).openapi()
    validate(copy.deepcopy(document))  # OpenAPI 3.1 (openapi-spec-validator)
    resolver = Registry().with_resource("urn:openapi", Resource.opaque(document)).resolver(base_uri="urn:openapi")
    refs = set(_refs(document))
    assert "#/components/schemas/BatchJobIn" in refs
    unresolved = []
    for ref in sorted(refs):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            unresolved.append(ref)
    assert not unresolved, unresolved
    assert "$defs" not in json.dumps(document["paths"])  # every definition is a component


def _scalar_type(schema: dict[str, Any]) -> str | None:
    """``integer``, ``number`` or ``boolean`` when the property's schema (or one branch of its anyOf) is that."""
    for branch in [schema, *schema.get("anyOf", [])]:
        if branch.get("type") in ("integer", "number", "boolean"):
            return branch["type"]
    return None


def test_no_submit_field_takes_a_boolean_for_a_number_or_a_number_for_a_boolean(idle_client: TestClient) -> None:
    """Regression: ``"seed": false`` and ``"priority": true`` were accepted as 0 and 1, ``"stems": 0`` as false
    (Pydantic's lax mode). Driven by the document: every submit route's ``integer``/``number`` property refuses
    true and false, every ``boolean`` one 0 and 1, with a 422 locating the field."""
    document = idle_client.get("/openapi.json").json()
    checked = []
    for path, operations in document["paths"].items():
        operation = operations.get("post", {})
        if not operation.get("operationId", "").startswith("submit_"):
            continue
        content = operation["requestBody"]["content"]
        schema = (content.get("application/json") or content["multipart/form-data"])["schema"]
        example = content.get("application/json", {}).get("examples", {}).get("default", {}).get("value", {})
        for name, prop in schema["properties"].items():
            expected = _scalar_type(prop)
            if expected is None:
                continue
            wrong = (0, 1) if expected == "boolean" else (True, False)
            error_type = {"integer": "int_type", "number": "float_type", "boolean": "bool_type"}[expected]
            for value in wrong:
                if "application/json" in content:
                    response = idle_client.post(path, json={**example, name: value})
                else:  # the engine's fields as the params part: they are validated before any file
                    response = idle_client.post(path, files={"params": (None, json.dumps({name: value}))})
                body = assert_problem(response, 422)
                errors = [e for e in body["errors"] if e["loc"] == ["body", name]]
                assert errors and errors[0]["type"] == error_type, (path, name, body)
                assert f"valid {expected}, not" in errors[0]["msg"], errors
            checked.append((path, name))
    for field in ("seed", "priority", "humanize"):
        assert ("/v1/drums", field) in checked
    assert {path for path, _ in checked} == {f"/v1/{spec.route}" for spec in ENGINES}


def test_parameters_declare_their_pattern_or_enum(idle_client: TestClient) -> None:
    """``Last-Event-ID`` has its pattern, every ``kind`` (query and bodies) the registered kinds, an upload id
    its pattern, a cursor its alphabet, ``Idempotency-Key`` its length; no parameter is ever null (it is text on
    the wire: absent is how it is not given)."""
    document = idle_client.get("/openapi.json").json()
    kinds = [spec.kind for spec in ENGINES]

    def parameter(path: str, method: str, name: str) -> dict[str, Any]:
        found = [p for p in document["paths"][path][method]["parameters"] if p["name"] == name]
        assert len(found) == 1, (path, method, name)
        return found[0]["schema"]

    nullable = [
        (path, method, p["name"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for p in operation.get("parameters", [])
        if "null" in json.dumps(p["schema"])
    ]
    assert not nullable, nullable
    assert parameter("/v1/jobs/{job_id}/events", "get", "Last-Event-ID")["pattern"] == decimal_at_most(MAX_EVENT_ID)
    assert parameter("/v1/batches/{batch_id}/events", "get", "Last-Event-ID")["pattern"] == "^[0-9]{1,18}$"
    assert parameter("/v1/jobs", "get", "kind")["enum"] == kinds
    schemas = document["components"]["schemas"]
    assert list(schemas["BatchJobIn"]["discriminator"]["mapping"]) == kinds  # a batch job: a union on its kind
    bulk = schemas["BulkCancel"]["properties"]["kind"]["anyOf"]  # a body field may be null
    assert [b["enum"] for b in bulk if b.get("type") == "string"] == [kinds]
    assert "x-engine-kind" not in json.dumps(document)
    for method in ("get", "delete"):
        assert parameter("/v1/uploads/{upload_id}", method, "upload_id")["pattern"] == "^upl_[0-9a-f]{32}$"
    cursor = parameter("/v1/jobs", "get", "cursor")
    assert cursor["pattern"] == "^[A-Za-z0-9_-]*$" and cursor["maxLength"] == 512
    key = parameter("/v1/drums", "post", "Idempotency-Key")
    assert (key["minLength"], key["maxLength"]) == (1, 255)
    # the server answers as declared
    assert_problem(idle_client.get("/v1/jobs", params={"kind": "nope"}), 422)
    assert_problem(idle_client.get("/v1/uploads/not-an-upload-id"), 422)
    assert_problem(idle_client.get("/v1/uploads/upl_" + "0" * 32), 404)
    assert_problem(idle_client.post("/v1/drums", json=DRUMS, headers={"Idempotency-Key": ""}), 422)
    events = f"/v1/jobs/{'0' * 8}-0000-0000-0000-{'0' * 12}/events"
    for value in ("0", "0042", str(MAX_EVENT_ID)):  # matches the pattern: the job is looked up (unknown: 404)
        assert_problem(idle_client.get(events, headers={"Last-Event-ID": value}), 404)
    assert_problem(idle_client.get(events, headers={"Last-Event-ID": str(MAX_EVENT_ID + 1)}), 422)


def test_a_batch_job_is_a_union_on_kind_of_each_engines_params_and_inputs(idle_client: TestClient) -> None:
    """Regression: a batch job's ``params`` was a free-form object, so schema-valid batches were refused
    (``jobs[0].params.prompt: Field required`` for a ``track`` job given drums' fields). The document now says
    what the server checks: one branch per registered kind, its ``params`` the engine's request model (the
    component its submit route's schema comes from), its ``inputs`` only the engine's declared inputs, as
    upload ids, beside the job options."""
    document = idle_client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    union = schemas["BatchJobIn"]
    assert union["discriminator"]["propertyName"] == "kind"
    mapping = union["discriminator"]["mapping"]
    assert list(mapping) == [spec.kind for spec in ENGINES]
    assert union["oneOf"] == [{"$ref": ref} for ref in mapping.values()]
    for spec in ENGINES:
        branch = schemas[mapping[spec.kind].rsplit("/", 1)[-1]]
        properties = branch["properties"]
        assert properties["kind"]["const"] == spec.kind
        assert properties["params"]["$ref"] == f"#/components/schemas/{spec.request_model.__name__}"
        request = schemas[spec.request_model.__name__]
        assert request["properties"] == spec.request_model.model_json_schema()["properties"]
        assert ("params" in branch["required"]) == bool(request.get("required"))
        inputs = properties["inputs"]
        assert inputs["propertyNames"] == {"enum": [declared.name for declared in spec.inputs]}
        assert inputs["additionalProperties"] is False
        assert inputs.get("required", []) == [declared.name for declared in spec.inputs if declared.required]
        assert list(inputs["properties"]) == [declared.name for declared in spec.inputs]
        assert all(p["pattern"] == UPLOAD_ID_RE.pattern for p in inputs["properties"].values())
        assert set(properties) >= RESERVED_OPTION_NAMES and branch["additionalProperties"] is False

    # the body schema (with the document's components) takes the documented example and refuses the regression's
    registry = Registry().with_resource(
        "urn:openapi", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    body = Draft202012Validator(
        {"$ref": "urn:openapi#/paths/~1v1~1batches/post/requestBody/content/application~1json/schema"},
        registry=registry,
    )
    assert not list(body.iter_errors(BATCH_EXAMPLE))
    drums_params = BATCH_EXAMPLE["jobs"][0]["params"]
    for kind in mapping:
        job = {"kind": kind, "params": drums_params}
        assert body.is_valid({"jobs": [job]}) == (kind == "drums"), kind
    assert not body.is_valid(
        {"jobs": [{"kind": "drums", "params": drums_params, "inputs": {"file": "upl_" + "0" * 32}}]}
    )
    assert not body.is_valid({"jobs": [{"kind": "drums", "params": drums_params, "inputs": {"reference_midi": "x"}}]})


@pytest.mark.parametrize("limit", [0, 7, 10, 255, 1000, 2**31, MAX_EVENT_ID])
def test_decimal_at_most_matches_exactly_the_numbers_up_to_its_limit(limit: int) -> None:
    pattern = re.compile(decimal_at_most(limit))
    width = len(str(limit))
    numbers = {*range(min(limit, 1200) + 1), limit, limit + 1, limit + 10, 10**width - 1, 10**width}
    numbers |= {limit // d for d in (2, 3, 7, 11)} | {limit - d for d in (1, 9, 10, 11) if limit >= d}
    for number in numbers:
        for text in {str(number), str(number).zfill(width)}:
            assert bool(pattern.fullmatch(text)) == (number <= limit and len(text) <= width), (limit, text)
