"""A real HTTP webhook receiver on loopback for the tests, and an independent Standard Webhooks verifier.

``Receiver(script)`` answers each request with the next ``(status, delay_s)`` of ``script`` (then 200), or, with
``per_message``, by the attempt number of that ``webhook-id``; it records every request and lets a test wait on a
condition of what arrived (generous deadline, no sleeps).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    def __init__(
        self,
        script: list[tuple[int, float]] | None = None,
        *,
        per_message: list[int] | None = None,
        location: str | None = None,
    ) -> None:
        self.script = list(script or [])
        self.per_message = per_message
        self.location = location
        self.requests: list[Received] = []
        self._seen: dict[str, int] = {}
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status, delay_s = receiver._next(self.headers.get("webhook-id", ""))
                # recorded before the answer: whoever saw the sender get its answer sees the request here
                with receiver._cond:
                    receiver.requests.append(Received({k.lower(): v for k, v in self.headers.items()}, body, status))
                    receiver._cond.notify_all()
                if delay_s:
                    time.sleep(delay_s)
                try:
                    self.send_response(status)
                    if receiver.location and 300 <= status < 400:
                        self.send_header("Location", receiver.location)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up (timeout)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/cadenza"

    def _next(self, message_id: str) -> tuple[int, float]:
        with self._cond:
            if self.per_message is not None:
                attempt = self._seen.get(message_id, 0)
                self._seen[message_id] = attempt + 1
                return (self.per_message[attempt] if attempt < len(self.per_message) else 200), 0.0
            return self.script.pop(0) if self.script else (200, 0.0)

    def wait_for(self, condition: Callable[[list[Received]], bool], timeout_s: float = 120.0) -> list[Received]:
        """The requests once ``condition(requests)`` holds; AssertionError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not condition(self.requests):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"receiver: condition not met after {timeout_s} s; got {len(self.requests)}")
                self._cond.wait(remaining)
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def verify(secret: str, received: Received) -> dict[str, Any]:
    """Check a delivery's signature by the Standard Webhooks spec, written here independently of the server's
    library: HMAC-SHA256 under the base64 key after ``whsec_`` of ``"{webhook-id}.{webhook-timestamp}.{body}"``,
    base64, in a space-separated ``v1,<sig>`` list. Returns the parsed body; AssertionError if it does not verify."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    message_id = received.headers["webhook-id"]
    timestamp = received.headers["webhook-timestamp"]
    assert timestamp.isdigit() and abs(int(timestamp) - time.time()) < 300, timestamp
    signed = f"{message_id}.{timestamp}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [
        part.split(",", 1)[1] for part in received.headers["webhook-signature"].split() if part.startswith("v1,")
    ]
    assert any(hmac.compare_digest(expected, sig) for sig in offered), "signature does not verify"
    return json.loads(received.body)
