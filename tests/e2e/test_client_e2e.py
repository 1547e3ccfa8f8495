"""The Python clients against a live ``cadenza serve``: the module docstring's example runs as written
(only the address changes), the async client does the same work, and a dropped event stream is
resumed with ``Last-Event-ID``."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import mido
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import Server  # noqa: E402

import cadenza.client  # noqa: E402
from cadenza.client import AsyncCadenzaClient, CadenzaClient  # noqa: E402

DRUMS = {"producer_style": "Questlove", "bars": 1, "tempo": 92, "seed": 3}


def test_module_docstring_example_runs(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the example failed with ``NameError: Path``."""
    (example,) = re.findall(r"::\n\n((?:    .*\n|\n)+)", cadenza.client.__doc__ or "")
    code = "\n".join(line[4:] for line in example.splitlines())
    assert "http://127.0.0.1:8000" in code
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace("http://127.0.0.1:8000", server.base_url), "client-example", "exec"), namespace)
    assert namespace["job"]["status"] == "completed"
    assert namespace["path"] == Path("groove.mid") and mido.MidiFile(tmp_path / "groove.mid").length > 0


def test_async_client_submits_waits_follows_and_downloads(server: Server, tmp_path: Path) -> None:
    async def main() -> tuple[dict, list[dict], Path]:
        async with AsyncCadenzaClient(server.base_url) as client:
            job = await client.submit("drums", DRUMS, idempotency_key="async-1")
            assert (await client.submit("drums", DRUMS, idempotency_key="async-1"))["id"] == job["id"]
            events = [event async for event in client.events(job["id"])]
            done = await client.wait(job["id"], timeout_s=600)
            return done, events, await client.download(job["id"], "groove.mid", tmp_path)

    done, events, path = asyncio.run(main())
    assert done["status"] == "completed"
    assert events[-1]["data"]["status"] == "completed"
    assert mido.MidiFile(path).length > 0


class _DropOnce(httpx.BaseTransport):
    """A network that resets the first event stream after its first event (outside the project)."""

    def __init__(self) -> None:
        self.inner, self.dropped, self.sent_last_event_id = httpx.HTTPTransport(), False, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if not request.url.path.endswith("/events"):
            return response
        self.sent_last_event_id.append(request.headers.get("Last-Event-ID"))
        if self.dropped:
            return response
        self.dropped = True
        first = re.split(rb"\r?\n\r?\n", response.read(), maxsplit=1)[0] + b"\r\n\r\n"

        class Reset(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                yield first
                raise httpx.ReadError("connection reset by peer")

        return httpx.Response(response.status_code, headers=response.headers, stream=Reset(), request=request)


def test_events_resume_with_last_event_id_after_a_dropped_connection(server: Server) -> None:
    with CadenzaClient(server.base_url) as client:
        job = client.submit("drums", {**DRUMS, "seed": 4})
        client.wait(job["id"], timeout_s=600)
        expected = list(client.events(job["id"]))
    network = _DropOnce()
    with httpx.Client(base_url=server.base_url, transport=network, timeout=60) as http:
        resumed = list(CadenzaClient(http=http).events(job["id"]))
    assert network.dropped and network.sent_last_event_id == [None, str(expected[0]["sequence"])]
    assert resumed == expected  # nothing lost, nothing repeated
