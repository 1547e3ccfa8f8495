"""The OpenAPI document: every ``/v1`` JSON answer is documented with an example, and the examples
are real answers (they validate against the response models and match what the routes return)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from _api_helpers import DRUMS
from fastapi.testclient import TestClient
from pydantic import BaseModel

from cadenza.api import examples
from cadenza.api.deps import JobOut, JobPage
from cadenza.api.problems import Problem
from cadenza.api.routes.models import ModelList, ModelOut
from cadenza.engines import registry
from cadenza.engines.drums import examples as drums_examples
from cadenza.engines.drums.routes import StyleList, StyleOut
from cadenza.engines.drums.schema import DrumsRequest
from cadenza.engines.drums.styles import load_catalog
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
