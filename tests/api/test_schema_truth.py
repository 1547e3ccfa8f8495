"""The document says what the server reads, in the places a generator from the schema found it did not: unknown
query parameters, JSON null written into a form field, key names, lists in a query string."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from _api_helpers import assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.music.keys import KEY_PATTERN, parse_key


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("truth")), start_workers=False)) as client:
        yield client


def test_an_unknown_query_parameter_is_a_422_naming_what_the_route_accepts(client: TestClient) -> None:
    assert client.get("/v1/jobs", params={"status": "failed", "limit": 5}).status_code == 200
    problem = assert_problem(client.get("/v1/jobs", params={"stauts": "failed"}), 422)
    assert "'stauts'" in problem["detail"] and "status" in problem["detail"] and "cursor" in problem["detail"]
    assert problem["errors"] == [
        {"loc": ["query", "stauts"], "msg": "Unknown query parameter", "type": "extra_forbidden"}
    ]
    # the quick route's parameters are declared in its OpenAPI, not as FastAPI parameters: they count too
    quick = client.get("/v1/melodies/quick.mid", params={"bars": 2, "seed": 1, "colour": "blue"})
    assert "'colour'" in assert_problem(quick, 422)["detail"]
    assert client.get("/health", params={"anything": 1}).status_code == 200  # outside /v1: not checked


def test_null_in_a_nullable_form_field_means_not_given(client: TestClient) -> None:
    fields = {"producer_style": "J Dilla", "bars": "2", "seed": "null", "tempo": "null", "webhook": ""}
    job = client.post("/v1/drums", files={k: (None, v) for k, v in fields.items()}).json()
    # not given: no seed stored (one is drawn when it runs), the style's default tempo
    assert job["status"] == "queued" and job["params"]["seed"] is None and 60 <= job["params"]["tempo"] <= 200
    # a field that cannot be null keeps reading "null" as text, and refuses it
    fields = {"producer_style": "J Dilla", "bars": "null"}
    assert_problem(client.post("/v1/drums", files={k: (None, v) for k, v in fields.items()}), 422)


def test_the_params_and_metadata_parts_are_json(client: TestClient) -> None:
    files = {
        "params": (None, '{"producer_style": "Questlove", "bars": 2}', "application/json"),
        "metadata": (None, '{"take": 3}', "application/json"),
        "webhook_events_filter": (None, "completed"),
    }
    job = client.post("/v1/drums", files=files).json()
    assert job["params"]["producer_style"] == "Questlove" and job["metadata"] == {"take": 3}


@pytest.mark.parametrize(
    "text",
    ["D major", "e minor", "A dorian", "G mixolydian", "F#m", "Bb", " c  MIN ", "Ebmaj", "g♯ aeolian", "bb", "C",
     "H major", "D majorx", "", "D\nmajor", "Dm7", "minor", "C# # major", "D maj or"],
)  # fmt: skip
def test_the_key_pattern_is_what_parse_key_reads(text: str) -> None:
    try:
        parse_key(text)
        parsed = True
    except ValueError:
        parsed = False
    assert parsed == bool(re.fullmatch(KEY_PATTERN, text)), text


def test_a_list_in_the_query_string_is_declared_as_the_route_reads_it(client: TestClient) -> None:
    parameters = client.get("/openapi.json").json()["paths"]["/v1/melodies/quick.mid"]["get"]["parameters"]
    formats = next(p for p in parameters if p["name"] == "formats")
    pattern = formats["schema"]["items"]["pattern"]
    for value in ("midi", "midi,abc", " midi , notes ", "midi,,abc"):
        assert re.fullmatch(pattern, value), value
    assert not re.fullmatch(pattern, "midi,flac")
    response = client.get("/v1/melodies/quick.mid", params={"bars": 2, "seed": 1, "formats": "midi,abc,midi"})
    assert response.status_code in (200, 202), response.text
