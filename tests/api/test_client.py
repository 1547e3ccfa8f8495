"""The Python client against the real app (with a real worker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mido
import pytest
from _api_helpers import DRUMS, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.client import CadenzaClient, CadenzaError


@pytest.fixture(scope="module")
def cadenza(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CadenzaClient]:
    settings = make_settings(tmp_path_factory.mktemp("client"), workers=1)
    with TestClient(create_app(settings)) as http:
        yield CadenzaClient(http=http)


def test_submit_wait_events_download(cadenza: CadenzaClient, tmp_path: Path) -> None:
    job = cadenza.submit("drums", {**DRUMS, "seed": 21}, idempotency_key="client-1")
    assert cadenza.submit("drums", {**DRUMS, "seed": 21}, idempotency_key="client-1")["id"] == job["id"]
    events = list(cadenza.events(job["id"]))
    assert events[-1]["type"] == "status" and events[-1]["data"]["status"] == "completed"
    assert list(cadenza.events(job["id"], last_event_id=events[-2]["sequence"])) == events[-1:]
    done = cadenza.wait(job["id"], timeout_s=60)
    assert done["status"] == "completed"
    path = cadenza.download(job["id"], "groove.mid", tmp_path)
    assert path == tmp_path / "groove.mid" and mido.MidiFile(path).length > 0
    assert job["id"] in [j["id"] for j in cadenza.list(kind="drums", limit=1)]
    cadenza.delete(job["id"])
    with pytest.raises(CadenzaError) as error:
        cadenza.get(job["id"])
    assert error.value.status == 404 and error.value.problem["title"]


def test_validation_error_carries_the_problem(cadenza: CadenzaClient) -> None:
    with pytest.raises(CadenzaError) as error:
        cadenza.submit("drums", {**DRUMS, "bars": 99})
    assert error.value.status == 422
    assert ["body", "bars"] in [e["loc"] for e in error.value.problem["errors"]]


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The real app with one worker and a tight rate limit (4 requests a second per client)."""
    settings = make_settings(tmp_path_factory.mktemp("client-limited"), workers=1, rate_limit="4/second")
    with TestClient(create_app(settings)) as http:
        yield http


def test_a_batch_against_the_rate_limit_completes_without_a_429(limited: TestClient) -> None:
    """Regression: the client polled every 0.25 s and died on the first 429. Now it waits with long-polls
    and paces itself on the RateLimit headers, so a batch never runs into the limit."""
    statuses: list[int] = []
    limited.event_hooks["response"] = [lambda response: statuses.append(response.status_code)]
    try:
        cadenza = CadenzaClient(http=limited, max_retry_wait_s=5)
        jobs = [cadenza.submit("drums", {**DRUMS, "seed": seed}) for seed in range(12)]
        done = [cadenza.wait(job["id"], timeout_s=600) for job in jobs]
    finally:
        limited.event_hooks["response"] = []
    assert [job["status"] for job in done] == ["completed"] * 12
    assert len(statuses) > 8 and 429 not in statuses  # more requests than the limit allows a second


def test_a_429_caused_by_someone_else_is_waited_out_after_retry_after(limited: TestClient) -> None:
    while limited.get("/v1/jobs").status_code != 429:  # another client uses up this second's requests
        pass
    cadenza = CadenzaClient(http=limited, max_retry_wait_s=5)
    first_page = next(cadenza.list(limit=1))  # its first request gets the 429, then waits Retry-After
    assert first_page["status"] in ("queued", "processing", "completed") and cadenza.retries >= 1


def test_wait_is_a_long_poll_not_a_poll(cadenza: CadenzaClient) -> None:
    """A job of a few seconds costs one request per status change, not four a second."""
    requests: list[str] = []
    cadenza.http.event_hooks["request"] = [lambda request: requests.append(request.headers.get("Prefer", ""))]
    try:
        job = cadenza.submit("drums", {**DRUMS, "bars": 8, "seed": 5})
        done = cadenza.wait(job["id"], timeout_s=600)
    finally:
        cadenza.http.event_hooks["request"] = []
    assert done["status"] == "completed"
    waits = requests[1:]
    assert 1 <= len(waits) <= 4, requests  # queued -> processing -> completed, at most 60 s apart
    assert all(prefer.startswith("wait=") for prefer in waits[1:]), requests


def test_job_options_travel_with_a_submit(cadenza: CadenzaClient) -> None:
    job = cadenza.submit("drums", {**DRUMS, "seed": 22}, priority=3, metadata={"ticket": "T-9"}, wait_s=30)
    assert job["priority"] == 3 and job["metadata"] == {"ticket": "T-9"}
    assert cadenza.wait(job["id"], timeout_s=60)["metadata"] == {"ticket": "T-9"}
