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
from cadenza.api.routes.styles import StyleList, StyleOut
from cadenza.engines.drums.schema import DrumsRequest
from cadenza.engines.drums.styles import load_catalog
from cadenza.engines.registry import all_engines
from cadenza.settings import Settings

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
        (JobOut, examples.JOB),
        (JobPage, examples.JOB_PAGE),
        (ModelOut, examples.MODEL),
        (ModelList, examples.MODEL_LIST),
        (StyleOut, examples.STYLE),
        (StyleList, examples.STYLE_LIST),
        (Problem, examples.PROBLEM_NOT_FOUND),
        (Problem, examples.PROBLEM_VALIDATION),
    ],
)
def test_example_validates_against_its_model(model: type[BaseModel], example: dict[str, Any]) -> None:
    assert model.model_validate(example).model_dump(mode="json", exclude_unset=True).keys() == example.keys()


def test_examples_match_the_real_engine_catalog_and_answers(idle_client: TestClient) -> None:
    assert DrumsRequest.model_validate(examples.JOB["params"]).model_dump(mode="json") == examples.JOB["params"]
    assert load_catalog(None).get("J Dilla").model_dump(mode="json") == examples.STYLE
    infos = {info.name: info for spec in all_engines() for info in spec.list_models(Settings().models_dir)}
    for example in examples.MODEL_LIST["models"]:
        real = dataclasses.asdict(infos[example["name"]])
        assert {key: example[key] for key in MODEL_FACTS} == {key: real[key] for key in MODEL_FACTS}

    created = idle_client.post("/v1/drums", json=DRUMS)
    assert created.status_code == 202, created.text
    real_job = idle_client.get(created.headers["location"]).json()
    assert real_job.keys() == examples.JOB.keys()
    assert real_job["links"].keys() == examples.JOB["links"].keys()
    assert real_job["params"].keys() == examples.JOB["params"].keys()
    page = idle_client.get("/v1/jobs").json()
    assert page.keys() == examples.JOB_PAGE.keys()
    assert idle_client.get("/v1/styles").json().keys() == examples.STYLE_LIST.keys()
    assert idle_client.get("/v1/models").json()["models"][0].keys() == examples.MODEL.keys()
    missing = idle_client.get(f"/v1/jobs/{examples.JOB['id']}")
    assert missing.status_code == 404
    assert missing.json().keys() == examples.PROBLEM_NOT_FOUND.keys()
    assert missing.json()["title"] == examples.PROBLEM_NOT_FOUND["title"]
