"""Webhooks (Standard Webhooks): signed deliveries to real loopback receivers, retries with backoff, 410, timeouts,
redirects not followed, a server restart between a failed and a successful attempt, address safety, isolation."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _api_helpers import DRUMS, assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.jobs.urls import WebhookAddressError, check_webhook_url, resolve_webhook
from cadenza.jobs.webhooks import make_secret, retry_delay_s

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_shared"))
from polling import until  # noqa: E402
from webhook_receiver import Receiver, verify  # noqa: E402

SECRET = make_secret()
FAST = {
    "webhook_allowed_hosts": ["127.0.0.1"],
    "webhook_retry_base_s": 0.2,
    "webhook_retry_max_s": 1.0,
    "webhook_timeout_s": 2.0,
    "webhook_poll_interval_s": 0.05,
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made: list[Receiver] = []

    def make(*args: Any, **kwargs: Any) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make  # type: ignore[misc]
    for r in made:
        r.close()


def app_client(tmp_path: Path, **overrides: Any) -> TestClient:
    settings = make_settings(tmp_path, workers=1, webhook_secret=SECRET, **(FAST | overrides))
    return TestClient(create_app(settings), raise_server_exceptions=False)


def deliveries(client: TestClient, job_id: str) -> list[dict]:
    response = client.get(f"/v1/jobs/{job_id}/webhooks")
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


def test_completed_job_is_delivered_once_signed_with_the_job_view(tmp_path: Path, receiver) -> None:
    hook = receiver()
    with app_client(tmp_path) as client:
        job = client.post("/v1/drums", json={**DRUMS, "webhook": hook.url, "metadata": {"order": 7}}).json()
        assert job["webhook"] == hook.url and job["webhook_events_filter"] == ["completed"]
        got = hook.wait_for(lambda r: len(r) >= 1)
        body = verify(SECRET, got[0])
        assert body["type"] == "job.completed"
        data = body["data"]
        assert (data["id"], data["status"], data["metadata"]) == (job["id"], "completed", {"order": 7})
        assert data["outputs"] and data["outputs"][0]["url"].startswith(f"/v1/jobs/{job['id']}/files/")
        assert got[0].headers["content-type"] == "application/json"
        [delivery] = until(lambda: deliveries(client, job["id"]), lambda d: d and d[0]["status"] == "delivered")
        assert delivery["id"] == got[0].headers["webhook-id"] and delivery["type"] == "job.completed"
        [attempt] = delivery["attempts"]
        assert attempt["status_code"] == 200 and attempt["latency_ms"] > 0 and attempt["response_excerpt"] == "ok"
        # a tampered body does not verify
        got[0].body = got[0].body.replace(b"completed", b"c0mpleted")
        with pytest.raises(AssertionError):
            verify(SECRET, got[0])


def test_events_filter_sends_the_chosen_events_with_their_times(tmp_path: Path, receiver) -> None:
    """Deliveries go out concurrently (no order is promised, as in the spec): each message carries its event's
    ``sequence``, which orders them."""
    hook = receiver()
    with app_client(tmp_path) as client:
        body = {**DRUMS, "webhook": hook.url, "webhook_events_filter": ["completed", "start"]}
        job = client.post("/v1/drums", json=body).json()
        assert job["webhook_events_filter"] == ["start", "completed"]
        got = hook.wait_for(lambda r: len(r) >= 2)
        messages = sorted((verify(SECRET, r) for r in got), key=lambda m: m["sequence"])
        assert [m["type"] for m in messages] == ["job.started", "job.completed"]
        assert len({r.headers["webhook-id"] for r in got}) == 2
        every = ["start", "progress", "output", "completed"]
        client.post("/v1/drums", json={**DRUMS, "seed": 9, "webhook": hook.url, "webhook_events_filter": every})

        def of_seed_9(requests: list) -> list[dict]:
            found = [verify(SECRET, r) for r in requests]
            return sorted((m for m in found if m["data"]["params"]["seed"] == 9), key=lambda m: m["sequence"])

        got = hook.wait_for(lambda r: any(m["type"] == "job.completed" for m in of_seed_9(r)))
        hook.wait_for(lambda r: {"job.started", "job.output"} <= {m["type"] for m in of_seed_9(r)})
        types = [m["type"] for m in of_seed_9(hook.requests)]
        assert types[0] == "job.started" and types[-1] == "job.completed"
        assert "job.progress" in types and "job.output" in types


def test_a_receiver_failing_twice_gets_the_same_message_three_times_with_backoff(tmp_path: Path, receiver) -> None:
    hook = receiver([(500, 0.0), (503, 0.0), (200, 0.0)])
    with app_client(tmp_path) as client:
        job = client.post("/v1/drums", json={**DRUMS, "webhook": hook.url}).json()
        got = hook.wait_for(lambda r: len(r) >= 3)
        assert len({r.headers["webhook-id"] for r in got}) == 1  # one message, retried
        assert {verify(SECRET, r)["data"]["id"] for r in got} == {job["id"]}
        assert got[1].at - got[0].at >= 0.8 * FAST["webhook_retry_base_s"]  # backoff, not a hot loop
        assert got[2].at - got[1].at >= 0.8 * 2 * FAST["webhook_retry_base_s"]
        [delivery] = until(lambda: deliveries(client, job["id"]), lambda d: d and d[0]["status"] == "delivered")
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 200]
        assert "answered 500" in delivery["attempts"][0]["error"]


def test_410_gone_stops_the_retries(tmp_path: Path, receiver) -> None:
    hook = receiver([(410, 0.0)])
    with app_client(tmp_path) as client:
        job = client.post("/v1/drums", json={**DRUMS, "webhook": hook.url}).json()
        [delivery] = until(lambda: deliveries(client, job["id"]), lambda d: d and d[0]["status"] == "gone")
        assert [a["status_code"] for a in delivery["attempts"]] == [410]
        assert delivery["next_attempt_at"] is None and len(hook.requests) == 1


def test_a_slow_receiver_times_out_and_is_retried(tmp_path: Path, receiver) -> None:
    hook = receiver([(200, 6.0)])  # answers after the 2 s timeout, then at once
    with app_client(tmp_path) as client:
        job = client.post("/v1/drums", json={**DRUMS, "webhook": hook.url}).json()
        [delivery] = until(lambda: deliveries(client, job["id"]), lambda d: d and d[0]["status"] == "delivered")
        first, second = delivery["attempts"]
        assert first["status_code"] is None and "timed out" in first["error"]
        assert first["latency_ms"] < 6000
        assert second["status_code"] == 200


def test_redirects_are_not_followed(tmp_path: Path, receiver) -> None:
    target = receiver()
    hook = receiver([(302, 0.0), (200, 0.0)], location=target.url)
    with app_client(tmp_path) as client:
        job = client.post("/v1/drums", json={**DRUMS, "webhook": hook.url}).json()
        [delivery] = until(lambda: deliveries(client, job["id"]), lambda d: d and d[0]["status"] == "delivered")
        assert [a["status_code"] for a in delivery["attempts"]] == [302, 200]
        assert target.requests == []  # the redirect's target never heard from the server


def test_a_delivery_survives_a_server_restart_between_attempts(tmp_path: Path, receiver) -> None:
    hook = receiver([(500, 0.0), (200, 0.0)])
    slow_retry = {"webhook_retry_base_s": 4.0}  # the retry falls due only after this server stopped
    with app_client(tmp_path, **slow_retry) as client:
        job = client.post("/v1/drums", json={**DRUMS, "webhook": hook.url}).json()
        until(lambda: deliveries(client, job["id"]), lambda d: d and len(d[0]["attempts"]) == 1)
    stopped = time.monotonic()
    assert len(hook.requests) == 1
    with app_client(tmp_path, **slow_retry) as client:
        got = hook.wait_for(lambda r: len(r) >= 2)
        assert got[1].at > stopped  # sent by the restarted server, from the stored row
        assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
        verify(SECRET, got[1])
        [delivery] = until(lambda: deliveries(client, job["id"]), lambda d: d[0]["status"] == "delivered")
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]


def test_a_job_deleted_before_its_delivery_succeeds_still_notifies(tmp_path: Path, receiver) -> None:
    hook = receiver([(500, 0.0), (200, 0.0)])
    with app_client(tmp_path, webhook_retry_base_s=1.0) as client:
        job = client.post("/v1/drums", json={**DRUMS, "webhook": hook.url}).json()
        first = hook.wait_for(lambda r: len(r) >= 1)
        until(lambda: client.get(f"/v1/jobs/{job['id']}").json(), lambda j: j["status"] == "completed")
        assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
        got = hook.wait_for(lambda r: len(r) >= 2)
        assert got[1].status == 200 and got[1].headers["webhook-id"] == first[0].headers["webhook-id"]
        assert verify(SECRET, got[1])["data"]["id"] == job["id"]
        service = client.app.state.service
        far = datetime.now(UTC) + timedelta(days=30)
        until(lambda: service.prune(now=far), lambda counts: counts.get("webhook_deliveries") == 1)  # then retention


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # plain http to a host not allowed
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:192.168.0.1]/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "ftp://example.com/hook",
        "not a url",
        "https:///nohost",
    ],
)
def test_unsafe_webhook_urls_are_422_naming_the_field(tmp_path: Path, url: str) -> None:
    with TestClient(create_app(make_settings(tmp_path), start_workers=False)) as client:
        problem = assert_problem(client.post("/v1/drums", json={**DRUMS, "webhook": url}), 422)
        assert problem["errors"][0]["loc"] == ["body", "webhook"]
        multipart = {"params": (None, '{"bars": 4}')}
        form = client.post("/v1/melodies", data={"webhook": url}, files=multipart)  # a multipart submit too
        assert_problem(form, 422)
        assert client.get("/v1/jobs").json()["jobs"] == []


LOOPBACK_WEBHOOKS = [
    ("http://2130706433/hook", "a loopback address"),
    ("http://0177.0.0.1/hook", "a loopback address"),
    ("http://0x7f.1/hook", "a loopback address"),
    ("http://127.1/hook", "a loopback address"),
    ("http://0/hook", "the unspecified address"),
    ("http://１２７．０．０．１/hook", "a loopback address"),
    ("http://127。0。0。1/hook", "a loopback address"),
    ("http://①②⑦.0.0.1/hook", "a loopback address"),
    ("http://[::ffff:127.0.0.1]/hook", "a loopback address"),
    ("http://[::1]/hook", "a loopback address"),
    ("https://0x7f.1/hook", "a loopback address"),
    ("https://%31%32%37.0.0.1/hook", "a loopback address"),
    ("https://LocalHost./hook", "a loopback name"),
]


@pytest.mark.parametrize(("url", "what"), LOOPBACK_WEBHOOKS)
def test_loopback_in_any_spelling_is_refused_at_submit(idle_client: TestClient, url: str, what: str) -> None:
    """Numeric (inet_aton), Unicode (UTS #46) and IPv6 spellings of loopback are read as the address they are:
    422 saying so and what is accepted, for a single submit and for a batch."""
    problem = assert_problem(idle_client.post("/v1/drums", json={**DRUMS, "webhook": url}), 422)
    [error] = problem["errors"]
    assert error["loc"] == ["body", "webhook"]
    assert what in error["msg"], error["msg"]
    assert "https URLs whose host is a public name or address" in error["msg"]
    assert "webhook_allowed_hosts" in error["msg"]
    batch = idle_client.post("/v1/batches", json={"jobs": [{"kind": "drums", "params": DRUMS}], "webhook": url})
    assert what in assert_problem(batch, 422)["errors"][0]["msg"]


def test_an_address_refused_when_sending_fails_the_delivery_at_once(tmp_path: Path, monkeypatch) -> None:
    """A name that passed at submit but resolves to a private address when sent (DNS rebinding) fails its
    delivery with the first attempt and a clear error, not retried; a name that does not resolve is retried."""
    real = socket.getaddrinfo

    def dns(host: str, port: int, *args: Any, **kwargs: Any) -> list:  # DNS is outside the project
        if host == "rebound.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]
        if host == "nxdomain.example.com":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    with app_client(tmp_path) as client:
        refused = client.post("/v1/drums", json={**DRUMS, "webhook": "https://rebound.example.com/h"}).json()
        lost = client.post("/v1/drums", json={**DRUMS, "seed": 2, "webhook": "https://nxdomain.example.com/h"}).json()
        [delivery] = until(lambda: deliveries(client, refused["id"]), lambda d: d and d[0]["status"] == "failed")
        [attempt] = delivery["attempts"]
        assert attempt["status_code"] is None
        assert "resolves to 10.0.0.7, a private address" in attempt["error"], attempt["error"]
        assert "not retried" in attempt["error"]
        assert delivery["finished_at"] is not None and delivery["next_attempt_at"] is None
        [retried] = until(lambda: deliveries(client, lost["id"]), lambda d: d and len(d[0]["attempts"]) >= 2)
        assert retried["status"] == "pending" and "does not resolve" in retried["attempts"][0]["error"]
        assert len(deliveries(client, refused["id"])[0]["attempts"]) == 1  # still one, many ticks later


def test_the_servers_own_address_is_refused_unless_webhook_allow_self(tmp_path: Path, receiver) -> None:
    """Loopback is allowed (``FAST``), but not the server's own host:port in any spelling: with auth off such a
    webhook could call ``/v1/admin/reload``. The receiver stands in for the server (its port is the setting's)."""
    hook = receiver()
    port = hook.server.server_port
    own = f"http://127.0.0.1:{port}/v1/admin/reload"
    with app_client(tmp_path, port=port) as client:
        for url in (own, f"http://localhost:{port}/v1/admin/reload", f"http://0x7f.1:{port}/x"):
            problem = assert_problem(client.post("/v1/drums", json={**DRUMS, "webhook": url}), 422)
            msg = problem["errors"][0]["msg"]
            assert "this server's own address" in msg and "webhook_allow_self" in msg, msg
        batch = client.post("/v1/batches", json={"jobs": [{"kind": "drums", "params": DRUMS}], "webhook": own})
        assert "own address" in assert_problem(batch, 422)["errors"][0]["msg"]
    with app_client(tmp_path, port=port, webhook_allow_self=True) as client:
        job = client.post("/v1/drums", json={**DRUMS, "webhook": own})
        assert job.status_code == 202, job.text
        got = hook.wait_for(lambda r: len(r) >= 1)
        assert verify(SECRET, got[0])["data"]["id"] == job.json()["id"]
        assert got[0].headers["host"] == f"127.0.0.1:{port}"
        until(lambda: deliveries(client, job.json()["id"]), lambda d: d and d[0]["status"] == "delivered")


def test_webhook_options_are_validated_in_forms_and_bodies(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, webhook_allowed_hosts=["127.0.0.1"])
    with TestClient(create_app(settings, start_workers=False)) as client:
        bad = client.post(
            "/v1/drums", json={**DRUMS, "webhook": "https://example.com/h", "webhook_events_filter": ["done"]}
        )
        assert assert_problem(bad, 422)["errors"][0]["loc"][:2] == ["body", "webhook_events_filter"]
        form = client.post(
            "/v1/melodies",
            data={"webhook": "http://127.0.0.1:9/h", "webhook_events_filter": "start, completed"},
            files={"params": (None, '{"bars": 4}')},
        )
        assert form.status_code == 202, form.text
        assert form.json()["webhook_events_filter"] == ["start", "completed"]
        public = client.post("/v1/drums", json={**DRUMS, "webhook": "https://hooks.example.com/c?x=1"})
        assert public.status_code == 202 and public.json()["webhook"] == "https://hooks.example.com/c?x=1"


def test_addresses_are_checked_when_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    """A public-looking name that resolves to a private address (DNS rebinding) is refused before connecting."""

    def private(host: str, port: int, *args: Any, **kwargs: Any) -> list:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    assert check_webhook_url("https://hooks.example.com/x") == "https://hooks.example.com/x"
    monkeypatch.setattr(socket, "getaddrinfo", private)  # DNS is outside the project
    with pytest.raises(WebhookAddressError, match="10.0.0.7"):
        resolve_webhook("https://hooks.example.com/x")
    target = resolve_webhook("https://hooks.example.com/x", ["hooks.example.com"])
    assert (target.ip, target.port) == ("10.0.0.7", 443)


def test_retry_delays_double_with_jitter_up_to_the_maximum() -> None:
    import random

    rng = random.Random(1)
    delays = [retry_delay_s(n, 5.0, 3600.0, rng) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        nominal = min(3600.0, 5.0 * 2 ** (n - 1))
        assert 0.8 * nominal <= delay <= min(3600.0, 1.2 * nominal)
    assert delays[-1] <= 3600.0
    # the defaults retry for about a day: 5, 10, 20 … 3600 s
    total, attempts = 0.0, 0
    while total < 86400:
        attempts += 1
        total += min(3600.0, 5.0 * 2 ** (attempts - 1))
    assert 25 <= attempts <= 35


def test_a_generated_secret_is_stored_once_and_shown_by_the_cli(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from cadenza.cli.main import app
    from cadenza.db.session import make_engine
    from cadenza.jobs.webhooks import webhook_secret

    settings = make_settings(tmp_path)  # no webhook_secret set
    with TestClient(create_app(settings, start_workers=False)):
        pass
    engine = make_engine(settings.database_url)
    first = webhook_secret(settings, engine)
    assert first.startswith("whsec_") and webhook_secret(settings, engine) == first
    monkeypatch.setenv("CADENZA_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CADENZA_FILES_DIR", str(settings.files_dir))
    shown = CliRunner().invoke(app, ["config", "show", "--secrets", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert f'"webhook_secret": "{first}"' in shown.output
    masked = CliRunner().invoke(app, ["config", "show", "--format", "json"])
    assert first not in masked.output


def test_another_keys_webhook_log_is_404(tmp_path: Path) -> None:
    from cadenza.jobs import JobService

    settings = make_settings(tmp_path, auth_enabled=True, admin_key="admin-key-for-webhook-tests", **FAST)
    service = JobService(settings)
    alice, bob = service.keys.create("alice")[0], service.keys.create("bob")[0]
    with TestClient(create_app(settings, start_workers=False)) as client:
        job = client.post(
            "/v1/drums",
            json={**DRUMS, "webhook": "http://127.0.0.1:9/h"},
            headers={"Authorization": f"Bearer {alice}"},
        ).json()
        own = client.get(f"/v1/jobs/{job['id']}/webhooks", headers={"Authorization": f"Bearer {alice}"})
        assert own.status_code == 200
        other = client.get(f"/v1/jobs/{job['id']}/webhooks", headers={"Authorization": f"Bearer {bob}"})
        assert_problem(other, 404)
