"""Every corrupt or hostile file of the generated corpus (``hostile_corpus.py``, over 500 files), sent as
every declared input of every engine (the built-in ones and the echo test engine), through the live app
with a real worker: each gets a 4xx problem+json or a job that completes; never a 5xx, a failed or
crashed job, an orphan row or a file left behind."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import hostile_corpus
import pytest
from conftest import HERE, platform_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.engines import registry
from cadenza.jobs import store

FINAL = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    tmp = tmp_path_factory.mktemp("hostile")
    settings = platform_settings(tmp, max_upload_bytes=4 * 1024 * 1024)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, settings.files_dir


def _declared_inputs() -> list[tuple[str, str, str, dict]]:
    """``(kind, route, input name, params)`` for every declared input of every engine."""
    engines = registry.for_plugins(["echo_engine"])
    found = []
    for spec in engines.engines():
        params = dict(spec.example or {})
        if spec.kind == "separation":
            params = {"model": "hpss", "output_format": "wav"}  # the cheapest real path
        found.extend((spec.kind, spec.route, declared.name, params) for declared in spec.inputs)
    return found


def _wait_final(client: TestClient, url: str) -> dict:
    deadline = time.monotonic() + 600  # a long-poll per request; generous for a loaded 2-core machine
    job = client.get(url).json()
    while job["status"] not in FINAL and time.monotonic() < deadline:
        job = client.get(url, headers={"Prefer": "wait=60"}).json()
    return job


def test_corpus_gets_problems_or_completed_jobs_and_leaves_nothing(live: tuple[TestClient, Path]) -> None:
    client, files_dir = live
    corpus = hostile_corpus.audio_corpus() + hostile_corpus.midi_corpus()
    assert len(corpus) >= 500
    seeds = {"audio": hostile_corpus.audio_seeds()["wav-pcm16"][0], "midi": hostile_corpus.midi_seed()}
    targets = _declared_inputs()
    assert {(kind, name) for kind, _, name, _ in targets} >= {("separation", "file"), ("echo", "seed_midi")}
    outcomes: Counter[tuple[str, int]] = Counter()
    server_errors, accepted = [], []
    for kind, route, name, params in targets:
        uploads = [(item.name, item.filename, item.data) for item in corpus]
        uploads += [
            (f"hostile-name-{i}", fn, seed)
            for i, fn in enumerate(hostile_corpus.HOSTILE_FILENAMES)
            for seed in seeds.values()
        ]
        for label, filename, data in uploads:
            response = client.post(
                f"/v1/{route}",
                data={"params": json.dumps(params)},
                files={name: (filename, data, "application/octet-stream")},
            )
            outcomes[(kind, response.status_code)] += 1
            if response.status_code >= 500:
                server_errors.append((kind, label, response.status_code, response.text[:300]))
            elif response.status_code in (200, 201, 202):
                accepted.append((kind, label, response.json()["url"]))
            else:
                assert 400 <= response.status_code < 500, (kind, label, response.status_code)
                assert response.headers["content-type"].startswith("application/problem+json"), (kind, label)
                body = response.json()
                assert body["status"] == response.status_code and body["detail"], (kind, label, body)
    assert not server_errors, server_errors
    # Both paths were exercised: many rejections and many accepted files on each engine with inputs.
    for kind in ("separation", "echo"):
        assert sum(n for (k, s), n in outcomes.items() if k == kind and s >= 400) > 50, outcomes
        assert sum(1 for k, _, _ in accepted if k == kind) > 10, outcomes

    not_completed = []
    for kind, label, url in accepted:
        job = _wait_final(client, url)
        if job["status"] != "completed" or job["attempts"] != 1:
            not_completed.append((kind, label, job["status"], job["attempts"], job.get("error")))
    assert not not_completed, not_completed

    # Nothing left behind: one folder per job row, no partial files, no staged uploads.
    listed: set[str] = set()
    page = {"jobs": [], "next_cursor": ""}
    while page["next_cursor"] is not None:
        query = {"limit": 100} | ({"cursor": page["next_cursor"]} if page["next_cursor"] else {})
        page = client.get("/v1/jobs", params=query).json()
        listed |= {job["id"] for job in page["jobs"]}
    assert listed == {url.rsplit("/", 1)[1] for _, _, url in accepted}  # no orphan rows
    folders = {p.name for p in files_dir.iterdir() if p.is_dir() and p.name != "uploads"}
    assert folders == {str(store.job_dir(files_dir, job_id).name) for job_id in listed}
    leftovers = [str(p) for p in files_dir.rglob("*") if p.name.endswith(".part") or p.name.startswith(".partial")]
    assert leftovers == []
    uploads = files_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
