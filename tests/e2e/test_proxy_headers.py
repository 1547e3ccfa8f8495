"""``X-Forwarded-For`` behind ``cadenza serve``: ignored by default, so a client on the loopback cannot pick its
rate-limit bucket (nor its bucket of failed API keys) by rotating it; honoured only from ``forwarded_allow_ips``,
where each forwarded client gets its own bucket and the access log names it."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import Server, start_server  # noqa: E402

from cadenza.settings import Settings  # noqa: E402

LIMIT = 5  # requests per client IP and hour: the whole test fits in its window however slow the machine
ADMIN = "proxy-test-admin-key-0123456789"


def _server(tmp: Path, **settings: str) -> Server:
    return start_server(tmp, workers="0", rate_limit=f"{LIMIT}/hour", auth_enabled="true", admin_key=ADMIN, **settings)


def _clients(lines: list[dict]) -> list[str]:
    """The client of each access-log line but those of the start-up probes of ``/health``."""
    return [line["client"] for line in lines if line.get("event") == "request" and line["path"] != "/health"]


def _get(client: httpx.Client, path: str, forwarded_for: str, key: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return client.get(path, headers=headers).status_code


def test_rotating_x_forwarded_for_does_not_escape_the_limits(tmp_path: Path) -> None:
    server = _server(tmp_path)
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            # wrong keys, each "from" another address: all count against 127.0.0.1
            answers = [_get(client, "/v1/jobs", f"198.51.100.{i}", key="wrong-key") for i in range(LIMIT + 1)]
            assert answers == [401] * LIMIT + [429]
            assert _get(client, "/openapi.json", "198.51.100.200") == 429  # one bucket: the connection's address
        clients = _clients(server.json_lines(lambda lines: len(_clients(lines)) >= LIMIT + 2))
        assert clients == ["127.0.0.1"] * (LIMIT + 2)
    finally:
        server.stop()


def test_a_trusted_proxy_gives_each_client_its_bucket(tmp_path: Path) -> None:
    server = _server(tmp_path, forwarded_allow_ips='["127.0.0.1"]')
    try:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            answers = [_get(client, "/openapi.json", "203.0.113.7") for _ in range(LIMIT + 1)]
            assert answers == [200] * LIMIT + [429]  # the forwarded client is limited...
            assert _get(client, "/openapi.json", "203.0.113.8") == 200  # ...alone
            failed = [_get(client, "/v1/jobs", "203.0.113.9", key="wrong-key") for _ in range(LIMIT + 1)]
            assert failed == [401] * LIMIT + [429]  # failed keys count per forwarded client too
            assert _get(client, "/v1/jobs", "203.0.113.10", key=ADMIN) == 200
            # the proxy's own requests (no header) are its own client
            assert client.get("/openapi.json").status_code == 200
        sent = 2 * (LIMIT + 1) + 3
        clients = _clients(server.json_lines(lambda lines: len(_clients(lines)) >= sent))
        assert set(clients) == {"203.0.113.7", "203.0.113.8", "203.0.113.9", "203.0.113.10", "127.0.0.1"}
    finally:
        server.stop()


def test_forwarded_allow_ips_takes_addresses_and_networks() -> None:
    settings = Settings(forwarded_allow_ips=["127.0.0.1", "10.1.2.3/8", "::1", "fd00::/8"])
    assert settings.forwarded_allow_ips == ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]
    assert Settings.model_fields["forwarded_allow_ips"].get_default(call_default_factory=True) == []  # no one
    with pytest.raises(ValidationError, match="not an IP address or CIDR network"):
        Settings(forwarded_allow_ips=["proxy.example"])
