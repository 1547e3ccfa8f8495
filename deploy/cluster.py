"""``make cluster``: Cadenza distributed on one machine — Redis, PostgreSQL, the API and two Celery workers.

Redis is Debian's ``redis-server`` (``make services`` installs it as root), PostgreSQL comes from ``pgserver``
(a wheel with the binaries); both keep their data under ``<folder>/``. The API listens on
http://127.0.0.1:8000 (``--port``); the README's examples work against it unchanged. Ctrl-C stops everything
(the workers finish their running jobs first).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def running(folder: Path, port: int, workers: int, *, executor: str = "celery", quiet: bool = False) -> Iterator[str]:
    """Start the cluster (``executor="local"``: one ``cadenza serve`` with ``workers`` local processes on SQLite,
    the laptop mode, for comparisons) and yield its base URL; stop everything on exit."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    out = subprocess.DEVNULL if quiet else None
    procs: list[subprocess.Popen] = []
    pg = None
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
    env.update({"CADENZA_FILES_DIR": str(folder / "files"), "CADENZA_PORT": str(port), "CADENZA_LOG_LEVEL": "warning"})
    if executor == "celery":
        redis_bin = shutil.which("redis-server")
        if redis_bin is None:
            sys.exit("redis-server is missing: `sudo make services` (or apt-get install redis-server)")
        import pgserver

        redis_port = free_port()
        args = [
            redis_bin,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
        ]
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        pg = pgserver.get_server(str(folder / "postgres"), cleanup_mode=None)
        env.update(
            {
                "CADENZA_EXECUTOR": "celery",
                "CADENZA_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
                "CADENZA_DATABASE_URL": f"postgresql+psycopg://postgres:@/postgres?host={folder / 'postgres'}",
            }
        )
    else:
        env.update({"CADENZA_DATABASE_URL": f"sqlite:///{folder / 'cadenza.db'}", "CADENZA_WORKERS": str(workers)})
    cadenza = str(Path(sys.executable).with_name("cadenza"))
    base_url = f"http://127.0.0.1:{port}"
    try:
        api = subprocess.Popen([cadenza, "serve"], env=env, stdout=out, stderr=out)
        procs.append(api)
        deadline = time.monotonic() + 120
        while not _healthy(base_url):
            if api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start (exit code {api.poll()})")
            time.sleep(0.2)
        if executor == "celery":
            procs += [subprocess.Popen([cadenza, "worker"], env=env, stdout=out, stderr=out) for _ in range(workers)]
            while f"{workers} worker(s)" not in httpx.get(f"{base_url}/ready", timeout=30).text:
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not start")
                time.sleep(0.2)
        yield base_url
    finally:
        for proc in reversed(procs):  # workers first (warm shutdown), then the API, then Redis
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if pg is not None:
            pg.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("var/cluster"), help="Data of Redis, PostgreSQL, files.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (one process each).")
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with running(args.folder, args.port, args.workers) as base_url:
        print(f"Cadenza cluster: {base_url} (data in {args.folder}); Ctrl-C stops.", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
