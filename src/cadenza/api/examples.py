"""OpenAPI examples of the API's answers.

The job and model examples come from the engines (``EngineSpec.openapi_examples``, taken from real
runs) and are put into the document by :func:`add_engine_examples`; the problem examples are here.
``tests/api/test_openapi.py`` validates each against its model.
"""

from __future__ import annotations

from typing import Any

_JOB_ID = "3f0c2a9e-8b1d-4c6e-9a27-5d4e1f0b7c82"
_JOB_URL = f"/v1/jobs/{_JOB_ID}"

PROBLEM_NOT_FOUND: dict[str, Any] = {
    "type": "urn:cadenza:problem:job-not-found",
    "title": "Job Not Found",
    "status": 404,
    "detail": f"no job {_JOB_ID}",
    "instance": _JOB_URL,
}

PROBLEM_VALIDATION: dict[str, Any] = {
    "type": "urn:cadenza:problem:validation-failed",
    "title": "Validation Failed",
    "status": 422,
    "detail": "The request is invalid: query.limit: Input should be less than or equal to 100",
    "instance": "/v1/jobs",
    "errors": [
        {"loc": ["query", "limit"], "msg": "Input should be less than or equal to 100", "type": "less_than_equal"}
    ],
}


def engine_examples(engines: list[Any]) -> dict[str, Any]:
    """``{"JobOut", "JobPage", "ModelOut", "ModelList"}`` examples from the engines' ``openapi_examples``
    (the first engine that has a job example, every engine's model example)."""
    jobs = [spec.openapi_examples["job"] for spec in engines if "job" in spec.openapi_examples]
    models = [spec.openapi_examples["model"] for spec in engines if "model" in spec.openapi_examples]
    found: dict[str, Any] = {}
    if jobs:
        found["JobOut"] = jobs[0]
        found["JobPage"] = {"jobs": jobs[:1], "next_cursor": None}
    if models:
        found["ModelOut"] = models[0]
        found["ModelList"] = {"count": len(models), "models": models}
    return found


def add_engine_examples(document: dict[str, Any], engines: list[Any]) -> None:
    """Put :func:`engine_examples` into the OpenAPI ``document``'s component schemas, and each engine's
    request model (with its ``$defs``) under its class name for the submit routes' ``$ref``."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for spec in engines:
        schema = spec.request_model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[spec.request_model.__name__] = schema
    for name, example in engine_examples(engines).items():
        if name in schemas:
            schemas[name]["examples"] = [example]
