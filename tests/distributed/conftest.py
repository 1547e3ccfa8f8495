"""A real cluster for the distributed executor: Redis (Debian's ``redis-server`` on a free loopback port, no
persistence, so a restart loses every message), PostgreSQL (``pgserver``), ``cadenza serve`` with
``executor: celery`` and ``cadenza worker`` processes, all as subprocesses. Skipped without ``redis-server``
except in CI (``CI=true``), where ``make services`` installs it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REDIS = shutil.which("redis-server")
if REDIS is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("redis-server is missing: `make services` installs it (Debian package redis-server)")
    pytest.skip("redis-server is not installed (make services)", allow_module_level=True)

pgserver = pytest.importorskip("pgserver")
psycopg = pytest.importorskip("psycopg")

CADENZA = str(Path(sys.executable).with_name("cadenza"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Redis:
    """``redis-server`` on ``port`` with no persistence; :meth:`restart` loses every queued message."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*args, "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Proc:
    process: subprocess.Popen
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def kill_group(self) -> None:
        """SIGKILL the process and all its descendants (a worker host dying; Celery's pool processes may sit in
        their own process groups, so the tree is walked rather than the group signalled)."""
        victims, frontier = [], [self.process.pid]
        while frontier:
            pid = frontier.pop()
            victims.append(pid)
            frontier.extend(_children(pid))
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout_s: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill_group()
        return self.process.returncode

    def children(self) -> set[int]:
        return _children(self.process.pid)


def _children(parent: int) -> set[int]:
    """Pids whose parent is ``parent`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.add(int(entry.name))
    return found


class Cluster:
    """API + workers against one Redis and one PostgreSQL database, files in one shared folder."""

    def __init__(self, folder: Path, redis: Redis, database_url: str, **settings: str) -> None:
        self.folder, self.redis = folder, redis
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
        env.update(
            {
                "CADENZA_EXECUTOR": "celery",
                "CADENZA_BROKER_URL": redis.url,
                "CADENZA_DATABASE_URL": database_url,
                "CADENZA_FILES_DIR": str(folder / "files"),
                "CADENZA_MODELS_DIR": str(folder / "models"),
                "CADENZA_PORT": str(self.port),
                "CADENZA_MIN_FREE_DISK_MB": "0",
                "CADENZA_LOG_FORMAT": "json",
                "CADENZA_WORKERS": "1",
                "CADENZA_JOB_LEASE_S": "6",
                "CADENZA_CELERY_RESEND_AFTER_S": "3",
                "CADENZA_RATE_LIMIT": "100000/minute",
            }
        )
        env.update({f"CADENZA_{k.upper()}": v for k, v in settings.items()})
        self.env = env
        self.api: Proc | None = None
        self.workers: list[Proc] = []

    def _spawn(self, name: str, args: list[str]) -> Proc:
        log = self.folder / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [CADENZA, *args],
                env=self.env,
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return Proc(process, log)

    def start_api(self) -> Proc:
        self.api = self._spawn("api", ["serve"])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.api.process.poll() is None, self.api.logs()
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return self.api
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"the API did not start:\n{self.api.logs()}")

    def start_worker(self, queues: str | None = None, name: str | None = None) -> Proc:
        args = ["worker"] + (["--queues", queues] if queues else [])
        proc = self._spawn(name or f"worker-{len(self.workers)}", args)
        self.workers.append(proc)
        return proc

    def wait_workers(self, count: int, timeout_s: float = 120) -> dict:
        """``/ready`` once ``count`` workers are seen (Celery's remote control)."""
        deadline = time.monotonic() + timeout_s
        while True:
            body = httpx.get(f"{self.base_url}/ready", timeout=30).json()
            if body["checks"].get("workers", {}).get("detail", "").startswith(f"{count} worker"):
                return body
            for worker in self.workers:
                assert worker.process.poll() is None, worker.logs()
            assert time.monotonic() < deadline, body
            time.sleep(0.2)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop(30)
        if self.api is not None:
            self.api.stop(30)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[Path]:
    folder = Path(tempfile.gettempdir()) / f"cadenza-pg-{uuid.uuid4().hex[:8]}"
    server = pgserver.get_server(str(folder), cleanup_mode="delete")
    yield folder
    server.cleanup()


def new_database(pg_server: Path) -> str:
    name = "cadenza_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"host={pg_server} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres:@/{name}?host={pg_server}"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    redis = Redis(tmp_path)
    yield redis
    redis.stop()
