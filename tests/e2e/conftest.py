"""End-to-end fixtures: ``cadenza serve`` as a real subprocess on a free port, talked to over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def chromium_path() -> str:
    """Debian's Chromium (``make services`` installs it); skipped without it, except in CI where it fails."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing: `make test` installs Debian's chromium package")
        pytest.skip("Chromium is not installed (make test installs it)")
    return found


#: Playwright init script: each ``securitypolicyviolation`` event of the page (shadow roots included: the event is
#: composed) is reported to the binding :func:`record_csp_violations` exposes.
CSP_RECORDER = """document.addEventListener("securitypolicyviolation", (event) => window.__cspViolation(
  `${event.effectiveDirective} blocked ${event.blockedURI} (${event.sourceFile}:${event.lineNumber})`), true);"""


def record_csp_violations(page, violations: list[str] | None = None) -> list[str]:
    """The Content-Security-Policy violations of a Playwright ``page`` from now on (call before ``goto``): its
    ``securitypolicyviolation`` events and the CSP errors in its console (workers' too), as text, appended to
    ``violations`` (a new list when None), which is returned."""
    violations = [] if violations is None else violations

    def event(text: str) -> None:
        violations.append(text)

    def console(message) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.expose_function("__cspViolation", event)
    page.add_init_script(CSP_RECORDER)
    page.on("console", console)
    return violations


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    base_url: str
    log_path: Path
    env: dict[str, str]

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def json_lines(self, until: Callable[[list[dict]], bool], timeout_s: float = 60) -> list[dict]:
        """The JSON log lines once ``until(lines)`` holds.

        The access line is written after the response's last byte is sent, so a client can read the
        log before the line is there: wait for it (generous deadline) instead of reading once.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            lines = [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]
            if until(lines) or time.monotonic() > deadline or self.process.poll() is not None:
                return lines
            time.sleep(0.05)

    def stop(self, timeout_s: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_server(tmp: Path, *, embedded_defaults: bool = False, args: tuple[str, ...] = (), **settings: str) -> Server:
    """Start ``cadenza serve`` with ``tmp`` as its working directory.

    ``embedded_defaults``: keep the built-in defaults (the platform's user data folder), exactly as
    ``make serve`` runs on a fresh clone, with ``XDG_DATA_HOME`` pointed at ``tmp/xdg``; otherwise
    absolute paths under ``tmp``.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
    env.update({"CADENZA_PORT": str(port), "CADENZA_MIN_FREE_DISK_MB": "0", "CADENZA_LOG_FORMAT": "json"})
    if embedded_defaults:
        env["XDG_DATA_HOME"] = str(tmp / "xdg")
    else:
        env.update(
            {
                "CADENZA_DATABASE_URL": f"sqlite:///{tmp / 'cadenza.db'}",
                "CADENZA_FILES_DIR": str(tmp / "files"),
                "CADENZA_MODELS_DIR": str(tmp / "models"),
                "CADENZA_WORKERS": "1",
            }
        )
    env.update({f"CADENZA_{k.upper()}": v for k, v in settings.items()})
    log_path = tmp / "server.log"
    cadenza = Path(sys.executable).with_name("cadenza")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(cadenza), "serve", *args], env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path, env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"cadenza serve exited with {process.returncode}:\n{server.logs()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"cadenza serve did not start:\n{server.logs()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("e2e"))
    yield srv
    srv.stop()
