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
