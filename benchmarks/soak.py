"""Soak test: a live ``cadenza serve`` keeps its jobs through worker kills, server kills and drains.

Starts ``cadenza serve --config <tmp yaml>`` (temp SQLite database and files dir, ``--workers`` local
workers, a short ``job_lease_s``, no rate limit to speak of) and, while a thread keeps submitting drums
jobs (32 bars at 60 BPM with an audio preview: a few seconds each) and HPSS separation jobs (a generated
WAV, multipart) over HTTP, each with a unique ``Idempotency-Key`` (some keys are sent again and must
give back the same job), attacks it, spread evenly over ``--duration-s``:

* worker kills: SIGKILL of the worker process running a processing job (its pid from the job's
  ``processing`` event; a worker orphaned by a serve-only kill is fair game too), then a wait until the
  job leaves that worker (re-queued or failed);
* server kills: SIGKILL of the whole process group, alternating with SIGKILL of the serve process only
  (its workers are orphaned and must finish or give up their job), then a restart on the same database
  and files dir;
* drains: SIGTERM with jobs running (``shutdown_timeout_s`` = ``--drain-timeout-s``), then a restart;
* worker stalls (opt-in, ``--worker-stalls``): SIGSTOP of a busy worker until its lease ran out and
  another worker took the job over, then SIGCONT (the stalled worker must not disturb the new run).

The attack phase lasts ``--duration-s`` and until every minimum count is reached (at most twice the
duration). Then submissions stop, every job is waited for with ``Prefer: wait`` long-polls (up to
``--settle-timeout-s``), the server is drained, and the run is audited:

* lost: acknowledged, then 404; stuck: not final after the settle deadline;
* duplicated: a key answered with two job ids, a job on the server that no key maps to, a job with two
  terminal status events or two ``output`` events of one name, or a completed job whose files differ
  from those of another completed job with the identical request (requests are deterministic: seeded);
* leftovers, under the files dir: any ``*.part`` file; anything in ``uploads/`` (the soak makes no
  uploads); a top-level entry that is not the folder of a known job; the folder of a failed or
  cancelled job; in a completed job's folder, any file that is neither an output (engines write each
  output at its name in ``attempt-<n>/``, the folder of the job's last attempt) nor its stored input
  ``.upload/<stored_as>``. Missing or corrupt outputs
  (SHA-256) are reported apart.

A job whose worker was killed may legitimately fail (``WorkerCrashed``/``WorkerLost``): it counts as
failed, grouped by reason; a job failing with any other error is a problem. Prints a table, writes
``--out`` (JSON; each attack with its job's final status), keeps the work dir (database, files,
``server.log``) when something is wrong or with ``--keep``, and exits 1 when anything counted as a
problem is non-zero (lost, stuck, duplicated, leftovers, missing or corrupt outputs, other failures,
kills never noticed, drains that hung, failed restarts, orphaned workers still alive, unmet minimum
counts).

    .venv/bin/python benchmarks/soak.py [--duration-s 600] [--worker-kills 50] [--server-restarts 10]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import wave
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

FINAL = {"completed", "failed", "cancelled"}
DRUMS_REQUESTS = [
    {"producer_style": style, "bars": 32, "tempo": 60, "seed": seed, "formats": ["midi", preview]}
    for style, seed, preview in (
        ("J Dilla", 1, "mp3"),
        ("Metro Boomin", 2, "flac"),
        ("Questlove", 3, "mp3"),
        ("J Dilla", 4, "flac"),
    )
]
SEPARATION_FIELDS = {"model": "hpss"}
SEPARATION_SHARE = 0.2
RESUBMIT_SHARE = 0.15
ATTACK_ERRORS = ("WorkerCrashed", "WorkerLost")
"""Error types a job may fail with because of an attack (its worker was killed, on any attempt)."""
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
UPLOAD_DIR = ".upload"
UPLOADS_DIR = "uploads"
READY_TIMEOUT_S = 120.0
POLL_S = 0.2
console = Console()


# --------------------------------------------------------------------------- processes (Linux /proc)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def is_worker(pid: int) -> bool:
    """Whether ``pid`` is a live Cadenza worker (a multiprocessing ``spawn_main`` child, not the resource tracker)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"spawn_main" in cmdline and alive(pid)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- the server


class Server:
    """``cadenza serve --config <workdir>/config.yaml`` in its own session, restartable on the same
    database and files dir; its output is appended to ``<workdir>/server.log``."""

    def __init__(self, workdir: Path, settings: dict[str, Any]) -> None:
        self.workdir = workdir
        self.files_dir = Path(settings["files_dir"])
        self.base_url = f"http://{settings['host']}:{settings['port']}"
        self.config = workdir / "config.yaml"
        self.config.write_text(yaml.safe_dump(settings))
        self.log = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The current serve process (started)."""
        assert self.process is not None, "the server was never started"
        return self.process

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> float:
        """Start and wait for ``/ready``; returns the seconds it took. Raises RuntimeError when it exits or
        stays unready for :data:`READY_TIMEOUT_S`."""
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
        cadenza = Path(sys.executable).with_name("cadenza")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(cadenza), "serve", "--config", str(self.config)],
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(started + READY_TIMEOUT_S)
        return time.monotonic() - started

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cadenza serve exited with {self.proc.returncode} (see {self.log})")
            try:
                if httpx.get(f"{self.base_url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL_S)
        raise RuntimeError(f"cadenza serve was not ready within {READY_TIMEOUT_S:g} s (see {self.log})")

    def workers(self) -> list[int]:
        """Pids of the serve process's worker processes."""
        return [pid for pid in children(self.pid) if is_worker(pid)]

    def kill_group(self) -> None:
        """SIGKILL the serve process and every process of its group (its workers)."""
        os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait()

    def kill_serve_only(self) -> list[int]:
        """SIGKILL the serve process alone; returns the pids of the workers it leaves orphaned."""
        orphans = self.workers()
        self.proc.kill()
        self.proc.wait()
        return orphans

    def terminate(self, timeout_s: float) -> tuple[int | None, float]:
        """SIGTERM (drain) and wait up to ``timeout_s``; returns ``(exit code or None if it hung, seconds)``."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started


# --------------------------------------------------------------------------- HTTP


class Api:
    """The few endpoints the soak uses; transport errors propagate (the server may be down)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=15)

    def submit(self, sub: Submission, wav: bytes) -> httpx.Response:
        headers = {"Idempotency-Key": sub.key}
        if sub.kind == "drums":
            return self.http.post("/v1/drums", json=sub.params, headers=headers)
        files = {"file": ("song.wav", wav, "audio/wav")}
        return self.http.post("/v1/separations", data=sub.params, files=files, headers=headers)

    def job(self, job_id: str, wait_s: float | None = None) -> dict[str, Any] | None:
        """The job (None on 404); with ``wait_s``, long-polled until its status changes (``Prefer: wait``)."""
        headers = {"Prefer": f"wait={wait_s:g}"} if wait_s else {}
        resp = self.http.get(f"/v1/jobs/{job_id}", headers=headers, timeout=(wait_s or 0) + 15)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()

    def jobs(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Every job (newest first), following ``next_cursor``."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        while True:
            page = self.http.get("/v1/jobs", params=params)
            page.raise_for_status()
            body = page.json()
            found += body["jobs"]
            if not body["next_cursor"]:
                return found
            params["cursor"] = body["next_cursor"]

    def events(self, job_id: str, upto: int | None = None) -> list[dict[str, Any]]:
        """The job's events from the first (Server-Sent Events): all of a final job's, else those up to
        sequence ``upto``."""
        found: list[dict[str, Any]] = []
        timeout = httpx.Timeout(15, read=5)
        with self.http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=timeout) as resp:
            if resp.status_code != 200:
                return found
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    found.append(json.loads(line[5:]))
                    if upto is not None and found[-1]["sequence"] >= upto:
                        break
        return found

    def ready(self) -> dict[str, Any]:
        return self.http.get("/ready").json()


# --------------------------------------------------------------------------- bookkeeping


@dataclass
class Submission:
    """One request and its Idempotency-Key; ``job_id`` once the server acknowledged it, ``rejected`` when it
    answered an error that a retry would not change (reported as a problem)."""

    key: str
    kind: str
    params: dict[str, Any]
    job_id: str | None = None
    rejected: bool = False


@dataclass
class Ledger:
    """What the soak did and saw (shared by the submitter thread and the attacker)."""

    submissions: list[Submission] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    submit_errors: Counter[str] = field(default_factory=Counter)
    key_conflicts: list[dict[str, Any]] = field(default_factory=list)
    attacks: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    orphans: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledge(self, sub: Submission, job_id: str) -> None:
        """Record the job id a key was answered with; a second, different id is a duplicate."""
        with self.lock:
            if sub.job_id is not None and sub.job_id != job_id:
                self.key_conflicts.append({"key": sub.key, "job_ids": [sub.job_id, job_id]})
            sub.job_id = sub.job_id or job_id

    def attack(self, kind: str, **facts: Any) -> None:
        with self.lock:
            self.attacks.append({"type": kind, "at": round(time.time(), 3), **facts})

    def problem(self, text: str) -> None:
        console.print(f"[red]problem:[/] {text}")
        with self.lock:
            self.problems.append(text)

    def count(self, kind: str) -> int:
        with self.lock:
            return sum(1 for a in self.attacks if a["type"] == kind)

    def acked(self) -> list[Submission]:
        with self.lock:
            return [s for s in self.submissions if s.job_id is not None]

    def job_ids(self) -> list[str]:
        """The acknowledged job ids, each once, in submission order."""
        with self.lock:
            return list(dict.fromkeys(s.job_id for s in self.submissions if s.job_id is not None))

    def unacked(self) -> list[Submission]:
        with self.lock:
            return [s for s in self.submissions if s.job_id is None and not s.rejected]


def song_wav(seconds: float = 20.0, rate: int = 22050) -> bytes:
    """A mono 16-bit WAV: a tone plus a click every half second (something for HPSS to split)."""
    t = np.arange(int(seconds * rate)) / rate
    signal_ = 0.3 * np.sin(2 * np.pi * 220 * t)
    signal_[(np.arange(t.size) % (rate // 2)) < 200] += 0.5
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(signal_, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


# --------------------------------------------------------------------------- submitting


class Submitter(threading.Thread):
    """Keeps jobs coming: a new one every ``interval_s`` while fewer than ``backlog`` are queued, retries of
    keys not yet acknowledged, and repeats of acknowledged keys (which must answer the same job)."""

    def __init__(self, api: Api, ledger: Ledger, rng: random.Random, backlog: int, interval_s: float) -> None:
        super().__init__(name="soak-submitter", daemon=True)
        self.api, self.ledger, self.rng = api, ledger, rng
        self.backlog, self.interval_s = backlog, interval_s
        self.wav = song_wav()
        self.run_id = uuid.uuid4().hex[:8]
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            for sub in self.ledger.unacked():
                self.send(sub)
            if self.rng.random() < RESUBMIT_SHARE:
                self.resubmit()
            if not self.backlog_full():
                self.send(self.new_submission())

    def new_submission(self) -> Submission:
        with self.ledger.lock:
            key = f"soak-{self.run_id}-{len(self.ledger.submissions)}"
            if self.rng.random() < SEPARATION_SHARE:
                sub = Submission(key, "separation", dict(SEPARATION_FIELDS))
            else:
                sub = Submission(key, "drums", dict(self.rng.choice(DRUMS_REQUESTS)))
            self.ledger.submissions.append(sub)
        return sub

    def backlog_full(self) -> bool:
        try:
            queued = self.api.http.get("/v1/jobs", params={"status": "queued", "limit": 100}).json()["jobs"]
        except (httpx.HTTPError, ValueError, KeyError):
            return True  # down or restarting
        return len(queued) >= self.backlog

    def send(self, sub: Submission) -> str | None:
        """Send ``sub``; returns the job id it was answered with, or None (retried later)."""
        self.ledger.counters["submit_requests"] += 1
        try:
            resp = self.api.submit(sub, self.wav)
        except httpx.TransportError as exc:
            self.ledger.submit_errors[type(exc).__name__] += 1
            return None
        if resp.status_code not in (200, 202):
            self.ledger.submit_errors[f"HTTP {resp.status_code}"] += 1
            if resp.status_code not in (429, 503):  # busy or draining: retried without a word
                sub.rejected = resp.status_code < 500  # a server error may pass, a refusal will not
                self.ledger.problem(f"submit of {sub.key} answered {resp.status_code}: {resp.text[:300]!r}")
            return None
        job_id = resp.json()["id"]
        self.ledger.acknowledge(sub, job_id)
        return job_id

    def resubmit(self) -> None:
        acked = self.ledger.acked()
        if not acked:
            return
        sub = self.rng.choice(acked)
        if self.send(sub) is not None:
            self.ledger.counters["resubmissions_answered"] += 1


# --------------------------------------------------------------------------- attacking


def same_run(now: dict[str, Any] | None, then: dict[str, Any]) -> bool:
    """Whether ``now`` is still the processing run that ``then`` was (same ``started_at``)."""
    return now is not None and now["status"] == "processing" and now["started_at"] == then["started_at"]


def taken_over_or_final(now: dict[str, Any], then: dict[str, Any]) -> bool:
    """Whether the job runs again in a new run (another worker took it over) or ended (a job is re-queued
    once only)."""
    return now["status"] in FINAL or (now["status"] == "processing" and not same_run(now, then))


class Attacker:
    """Runs the attacks, each when it falls behind its even share of the duration."""

    def __init__(self, server: Server, api: Api, ledger: Ledger, args: argparse.Namespace) -> None:
        self.server, self.api, self.ledger, self.args = server, api, ledger, args
        self.rng = random.Random(args.seed + 1)
        self.targets = {
            "worker_kill": args.worker_kills,
            "worker_stall": args.worker_stalls,
            "server_kill": args.server_restarts,
            "drain": args.drains,
        }

    def run(self) -> None:
        started = time.monotonic()
        duration = self.args.duration_s
        hard_stop = started + 2 * duration
        while time.monotonic() < hard_stop:
            elapsed = time.monotonic() - started
            deficits = {
                kind: target * min(1.0, elapsed / duration) - self.ledger.count(kind)
                for kind, target in self.targets.items()
            }
            if elapsed >= duration and max(deficits.values()) <= 0:
                return
            kind = max(deficits, key=deficits.__getitem__)
            if deficits[kind] < 1 or not self.attack(kind):
                time.sleep(0.5)
        self.ledger.problem(f"minimum counts not reached in {2 * duration:g} s: {self.shortfall()}")

    def shortfall(self) -> dict[str, str]:
        return {k: f"{self.ledger.count(k)}/{t}" for k, t in self.targets.items() if self.ledger.count(k) < t}

    def attack(self, kind: str) -> bool:
        """Run one attack of ``kind``; False when it could not be done now (no job running)."""
        if kind == "worker_kill":
            return self.kill_worker()
        if kind == "worker_stall":
            return self.stall_worker()
        if kind == "server_kill":
            self.kill_server(serve_only=self.ledger.count("server_kill") % 2 == 1)
        else:
            self.drain()
        return True

    def running_worker(self, among: set[int] | None = None) -> tuple[dict[str, Any], int] | None:
        """A processing job and the pid of the live worker process running it (from its events), if
        given one of the pids ``among``."""
        try:
            jobs = self.api.jobs(status="processing")
            self.rng.shuffle(jobs)
            for job in jobs:
                pid = self.worker_pid(job)
                if pid is not None and (among is None or pid in among):
                    return job, pid
        except httpx.HTTPError:
            pass
        return None

    def worker_pid(self, job: dict[str, Any]) -> int | None:
        """The pid in the job's last ``processing`` status event, if it is a live worker on this host."""
        statuses = [e["data"] for e in self.api.events(job["id"], upto=job["sequence"]) if e["type"] == "status"]
        if not statuses or statuses[-1].get("status") != "processing":
            return None
        host, _, pid = str(statuses[-1].get("worker", "")).rpartition(":")
        if host != socket.gethostname() or not pid.isdigit() or not is_worker(int(pid)):
            return None
        return int(pid)

    def kill_worker(self, among: set[int] | None = None) -> bool:
        """SIGKILL the worker of a processing job (one of ``among`` if given) and wait until the job leaves
        it; False when no job was running."""
        target = self.running_worker(among)
        if target is None:
            return False
        job, pid = target
        orphan = pid not in self.server.workers()
        os.kill(pid, signal.SIGKILL)
        noticed_s, now = self.wait_job(job["id"], lambda now: not same_run(now, job))
        outcome = now["status"] if now else "gone"
        self.ledger.attack(
            "worker_kill", job_id=job["id"], pid=pid, orphan=orphan, noticed_s=noticed_s, job_then=outcome
        )
        if noticed_s is None:
            self.ledger.problem(f"job {job['id']} still held by killed worker {pid} after {self.notice_limit_s:g} s")
        return True

    def stall_worker(self) -> bool:
        """SIGSTOP the worker of a processing job until its lease ran out and another worker took the job
        over (or :attr:`notice_limit_s` passed), then SIGCONT it: a worker stalled, not dead (a long pause,
        a starved CPU, a frozen VM). False when no job was running."""
        target = self.running_worker(among=set(self.server.workers()))
        if target is None:
            return False
        job, pid = target
        os.kill(pid, signal.SIGSTOP)
        try:
            seconds, now = self.wait_job(job["id"], lambda now: now is None or taken_over_or_final(now, job))
        finally:
            os.kill(pid, signal.SIGCONT)
        taken_over_s = seconds if now is not None and now["status"] == "processing" else None
        self.ledger.attack("worker_stall", job_id=job["id"], pid=pid, taken_over_s=taken_over_s)
        return True

    @property
    def notice_limit_s(self) -> float:
        return 3 * self.args.lease_s + 10

    def wait_job(
        self, job_id: str, until: Callable[[dict[str, Any] | None], bool]
    ) -> tuple[float | None, dict[str, Any] | None]:
        """Long-poll the job until ``until(job)`` (job None once deleted) holds; returns ``(seconds, job)``,
        or ``(None, job)`` after :attr:`notice_limit_s`."""
        started = time.monotonic()
        now: dict[str, Any] | None = None
        while time.monotonic() - started < self.notice_limit_s:
            try:
                now = self.api.job(job_id, wait_s=1)
            except httpx.HTTPError:
                time.sleep(POLL_S)
                continue
            if until(now):
                return round(time.monotonic() - started, 3), now
        return None, now

    def wait_for_running_job(self, timeout_s: float = 10.0) -> bool:
        """Wait (briefly) until some job is processing, so the next attack hits one mid-run."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.api.jobs(status="processing"):
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(POLL_S)
        return False

    def kill_server(self, *, serve_only: bool) -> None:
        """SIGKILL the server (all of it, or the serve process only) and restart it; after a serve-only
        kill, also SIGKILL an orphaned worker still running a job, which only its lease can reveal."""
        running = self.wait_for_running_job()
        if serve_only:
            orphans = self.server.kill_serve_only()
            self.ledger.orphans += orphans
        else:
            orphans = []
            self.server.kill_group()
        mode = "serve_only" if serve_only else "process_group"
        self.ledger.attack("server_kill", mode=mode, jobs_running=running, orphans=orphans, **self.restart())
        if orphans:
            self.kill_worker(among=set(orphans))

    def drain(self) -> None:
        running = self.wait_for_running_job()
        code, seconds = self.server.terminate(self.args.drain_timeout_s + 30)
        if code is None:
            self.ledger.problem(f"SIGTERM drain of pid {self.server.pid} still running after {seconds:.0f} s")
            self.server.kill_group()
        elif code != 0:
            self.ledger.problem(f"SIGTERM drain of pid {self.server.pid} exited with {code}")
        self.ledger.attack("drain", jobs_running=running, exit_code=code, drain_s=round(seconds, 3), **self.restart())

    def restart(self, tries: int = 3) -> dict[str, Any]:
        """Start the server again (same database and files); raises after ``tries`` failed starts."""
        for attempt in range(1, tries + 1):
            try:
                return {"restart_s": round(self.server.start(), 3)}
            except RuntimeError as exc:
                self.ledger.problem(f"restart attempt {attempt} failed: {exc}")
                if self.server.process is not None and self.server.process.poll() is None:
                    self.server.kill_group()
        raise RuntimeError("the server would not restart")


# --------------------------------------------------------------------------- settling and auditing


def settle(api: Api, submitter: Submitter, ledger: Ledger, timeout_s: float) -> None:
    """Get every key acknowledged, then long-poll every job until it is final or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    for sub in ledger.unacked():
        while sub.job_id is None and time.monotonic() < deadline and submitter.send(sub) is None:
            time.sleep(1)
    for job_id in ledger.job_ids():
        while time.monotonic() < deadline:
            try:
                job = api.job(job_id, wait_s=min(30.0, max(1.0, deadline - time.monotonic())))
            except httpx.HTTPError:
                time.sleep(1)
                continue
            if job is None or job["status"] in FINAL:
                break


def audit_jobs(api: Api, ledger: Ledger) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Fetch every acknowledged job (and its events) and count outcomes; returns ``(jobs by id, figures)``."""
    jobs: dict[str, dict[str, Any]] = {}
    lost, stuck, event_dups, runs = [], [], [], Counter()
    for job_id in ledger.job_ids():
        job = api.job(job_id)
        if job is None:
            lost.append(job_id)
            continue
        jobs[job["id"]] = job
        if job["status"] not in FINAL:
            stuck.append(job_id)
            continue
        events = api.events(job["id"])
        runs[sum(1 for e in events if e["type"] == "status" and e["data"].get("status") == "processing")] += 1
        problem = event_problem(job, events)
        if problem:
            event_dups.append({"job_id": job["id"], "problem": problem})
    statuses = Counter(j["status"] for j in jobs.values())
    failed = [j for j in jobs.values() if j["status"] == "failed"]
    failures = Counter(UUID_RE.sub("<id>", f"{j['error']['type']}: {j['error']['message']}") for j in failed)
    unexpected = [j["id"] for j in failed if j["error"]["type"] not in ATTACK_ERRORS]
    untracked = sorted({j["id"] for j in api.jobs()} - set(jobs) - set(lost))
    figures = {
        "completed": statuses["completed"],
        "failed": statuses["failed"],
        "cancelled": statuses["cancelled"],
        "failure_reasons": dict(failures.most_common()),
        "unexpected_failures": unexpected,
        "lost": lost,
        "stuck": stuck,
        "runs_per_job": {str(k): v for k, v in sorted(runs.items())},
        "duplicated": {
            "keys_with_two_jobs": ledger.key_conflicts,
            "untracked_jobs": untracked,
            "event_problems": event_dups,
            "differing_results": differing_results(list(jobs.values())),
        },
    }
    return jobs, figures


def event_problem(job: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    """Why a final job's events are wrong: not exactly one terminal status event (the job's status), or
    two ``output`` events of one name; None when they are fine."""
    terminal = [e["data"]["status"] for e in events if e["type"] == "status" and e["data"].get("status") in FINAL]
    if terminal != [job["status"]]:
        return f"terminal status events {terminal} for a {job['status']} job"
    names = Counter(e["data"]["name"] for e in events if e["type"] == "output")
    twice = sorted(n for n, c in names.items() if c > 1)
    return f"output events repeated: {twice}" if twice else None


def differing_results(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Completed jobs whose outputs (name → SHA-256) differ from the first completed job with the same request."""
    reference: dict[str, tuple[str, dict[str, str]]] = {}
    differing = []
    for job in sorted(jobs, key=lambda j: j["created_at"]):
        if job["status"] != "completed":
            continue
        request = json.dumps([job["kind"], job["params"]], sort_keys=True)
        files = {o["name"]: o["sha256"] for o in job["outputs"]}
        first_id, first = reference.setdefault(request, (job["id"], files))
        if files != first:
            differing.append({"job_id": job["id"], "same_request_as": first_id})
    return differing


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def scan_files(files_dir: Path, jobs: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Files left behind (see the module docs), plus ``missing_outputs`` and ``corrupt_outputs``."""
    found: dict[str, list[str]] = {
        k: [] for k in ("part_files", "uploads", "unknown_entries", "final_job_dirs", "extra_job_files")
    }
    found |= {"missing_outputs": [], "corrupt_outputs": []}
    found["part_files"] = [str(p.relative_to(files_dir)) for p in files_dir.rglob("*.part")]
    if (files_dir / UPLOADS_DIR).is_dir():
        found["uploads"] = [p.name for p in (files_dir / UPLOADS_DIR).iterdir() if p.suffix != ".part"]
    for entry in sorted(files_dir.iterdir()):
        job = jobs.get(entry.name)
        if entry.name == UPLOADS_DIR or (job is not None and job["status"] not in FINAL):
            continue
        if job is None or not entry.is_dir():
            found["unknown_entries"].append(entry.name)
        elif job["status"] != "completed":
            found["final_job_dirs"].append(f"{entry.name} ({job['status']})")
        else:
            check_job_dir(entry, job, found)
    return found


def check_job_dir(folder: Path, job: dict[str, Any], found: dict[str, list[str]]) -> None:
    """Compare a completed job's folder with its outputs (in the folder of its last attempt,
    ``attempt-<n>/``) and stored inputs."""
    outputs = {f"attempt-{job['attempts']}/{o['name']}": o["sha256"] for o in job["outputs"]}
    inputs = {f"{UPLOAD_DIR}/{i['stored_as']}" for i in (job.get("inputs") or {}).values()}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    found["extra_job_files"] += [f"{folder.name}/{p}" for p in sorted(present - set(outputs) - inputs)]
    found["missing_outputs"] += [f"{folder.name}/{p}" for p in sorted((set(outputs) | inputs) - present)]
    corrupt = [name for name, digest in outputs.items() if name in present and sha256(folder / name) != digest]
    found["corrupt_outputs"] += [f"{folder.name}/{name}" for name in corrupt]


def server_log_counts(log: Path) -> dict[str, dict[str, int]]:
    """The server's warning, error and critical log events: ``{level: {event: count}}``."""
    counts: dict[str, Counter[str]] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("level") in ("warning", "error", "critical"):
            counts.setdefault(record["level"], Counter())[str(record.get("event"))] += 1
    return {level: dict(c.most_common()) for level, c in counts.items()}


def annotate_attacks(attacks: list[dict[str, Any]], jobs: dict[str, dict[str, Any]]) -> None:
    """Add the final status (and error) of each attacked job to its attack record."""
    for attack in attacks:
        job = jobs.get(attack.get("job_id", ""))
        if job is not None:
            error = job["error"]
            attack["job_final"] = job["status"] + (f" ({error['type']}: {error['message']})" if error else "")


def wait_orphans_gone(ledger: Ledger, timeout_s: float) -> list[int]:
    """Wait for workers orphaned by serve-only kills to exit; kills and returns those still alive."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in ledger.orphans):
        time.sleep(POLL_S)
    lingering = [p for p in ledger.orphans if alive(p)]
    for pid in lingering:
        os.kill(pid, signal.SIGKILL)
    return lingering


# --------------------------------------------------------------------------- report


def problems_of(report: dict[str, Any]) -> list[str]:
    """The non-zero figures that fail the soak, and the problems met on the way."""
    counts = {
        "lost": len(report["lost"]),
        "stuck": len(report["stuck"]),
        "duplicated": report["duplicated_total"],
        "leftover files": report["leftover_total"],
        "missing outputs": len(report["files"]["missing_outputs"]),
        "corrupt outputs": len(report["files"]["corrupt_outputs"]),
        "jobs failed for other reasons than a killed worker": len(report["unexpected_failures"]),
        "orphaned workers still alive": len(report["orphans_lingering"]),
    }
    return [f"{name}: {n}" for name, n in counts.items() if n] + report["problems"]


def print_report(report: dict[str, Any]) -> None:
    table = Table(title="Cadenza soak", show_header=False)
    rows = [
        ("wall time", f"{report['wall_s']:.0f} s"),
        ("jobs submitted (keys)", report["submitted"]),
        ("acknowledged", report["acknowledged"]),
        ("submit requests / repeats answered", f"{report['submit_requests']} / {report['resubmissions_answered']}"),
        ("submit errors (retried)", json.dumps(report["submit_errors"])),
        ("completed", report["completed"]),
        ("failed", report["failed"]),
        ("cancelled", report["cancelled"]),
        ("stuck", len(report["stuck"])),
        ("lost", len(report["lost"])),
        ("duplicated", report["duplicated_total"]),
        ("runs per job", json.dumps(report["runs_per_job"])),
        ("worker kills (orphans among them)", f"{report['worker_kills']} ({report['orphan_worker_kills']})"),
        ("worker stalls (job taken over meanwhile)", f"{report['worker_stalls']} ({report['stalls_taken_over']})"),
        ("server kills + restarts", report["server_kills"]),
        ("drains + restarts", report["drains"]),
        ("files left behind", report["leftover_total"]),
        ("server log errors", json.dumps(report["server_log"].get("error", {}))),
        ("server log warnings", json.dumps(report["server_log"].get("warning", {}))),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    if report["failure_reasons"]:
        reasons = Table("failure reason", "jobs", title="Failed jobs")
        for reason, n in report["failure_reasons"].items():
            reasons.add_row(reason, str(n))
        console.print(reasons)
    for problem in report["failures"]:
        console.print(f"[red]FAIL[/] {problem}")
    if not report["failures"]:
        console.print("[green]OK[/]: nothing lost, stuck, duplicated or left behind")


def build_report(
    args: argparse.Namespace, ledger: Ledger, figures: dict[str, Any], files: dict[str, list[str]], extra: dict
) -> dict[str, Any]:
    leftovers = ("part_files", "uploads", "unknown_entries", "final_job_dirs", "extra_job_files")
    kills = [a for a in ledger.attacks if a["type"] == "worker_kill"]
    report = {
        "options": {k: v for k, v in vars(args).items() if k != "out"},
        "submitted": len(ledger.submissions),
        "acknowledged": len(ledger.acked()),
        "submit_requests": ledger.counters["submit_requests"],
        "resubmissions_answered": ledger.counters["resubmissions_answered"],
        "submit_errors": dict(ledger.submit_errors),
        **figures,
        "duplicated_total": sum(len(v) for v in figures["duplicated"].values()),
        "worker_kills": len(kills),
        "orphan_worker_kills": sum(1 for a in kills if a["orphan"]),
        "worker_stalls": ledger.count("worker_stall"),
        "stalls_taken_over": sum(1 for a in ledger.attacks if a.get("taken_over_s") is not None),
        "server_kills": ledger.count("server_kill"),
        "drains": ledger.count("drain"),
        "files": files,
        "leftover_total": sum(len(files[k]) for k in leftovers),
        "attacks": ledger.attacks,
        "problems": ledger.problems,
        **extra,
    }
    report["failures"] = problems_of(report)
    return report


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=600.0, help="Length of the attack phase.")
    parser.add_argument("--worker-kills", type=int, default=50, help="Minimum worker SIGKILLs.")
    parser.add_argument("--server-restarts", type=int, default=10, help="Minimum server SIGKILLs + restarts.")
    parser.add_argument("--drains", type=int, default=5, help="Minimum SIGTERM drains + restarts.")
    parser.add_argument(
        "--worker-stalls", type=int, default=0, help="Minimum SIGSTOPs of a busy worker past its lease (opt-in)."
    )
    parser.add_argument("--workers", type=int, default=2, help="Local worker processes of the server.")
    parser.add_argument("--lease-s", type=float, default=3.0, help="The server's job_lease_s.")
    parser.add_argument("--drain-timeout-s", type=float, default=4.0, help="The server's shutdown_timeout_s.")
    parser.add_argument("--backlog", type=int, default=4, help="Submit only while fewer jobs are queued.")
    parser.add_argument("--submit-interval-s", type=float, default=1.0)
    parser.add_argument("--settle-timeout-s", type=float, default=300.0, help="How long jobs may take to finish.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the soak's own choices.")
    parser.add_argument("--workdir", type=Path, help="Database, files and server.log (default: a temp dir).")
    parser.add_argument("--keep", action="store_true", help="Keep the work dir even when all is well.")
    parser.add_argument("--out", type=Path, default=Path("var/soak.json"))
    return parser.parse_args()


def server_settings(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": free_port(),
        "database_url": f"sqlite:///{workdir / 'cadenza.db'}",
        "files_dir": str(workdir / "files"),
        "models_dir": str(workdir / "models"),
        "workers": args.workers,
        "job_lease_s": args.lease_s,
        "shutdown_timeout_s": args.drain_timeout_s,
        "rate_limit": "1000000/minute",
        "min_free_disk_mb": 0,
        "log_format": "json",
    }


def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run the whole soak against a server in ``workdir``; returns the report."""
    started = time.monotonic()
    server = Server(workdir, server_settings(workdir, args))
    ledger = Ledger()
    api = Api(server.base_url)
    submitter = Submitter(api, ledger, random.Random(args.seed), args.backlog, args.submit_interval_s)
    try:
        server.start()
        submitter.start()
        Attacker(server, api, ledger, args).run()
        submitter.stop.set()
        submitter.join()
        console.print("attacks done; waiting for every job to finish")
        settle(api, submitter, ledger, args.settle_timeout_s)
        jobs, figures = audit_jobs(api, ledger)
        annotate_attacks(ledger.attacks, jobs)
        workers_ready = api.ready()["checks"]["workers"]
        code, _ = server.terminate(args.drain_timeout_s + 30)
        if code != 0:
            ledger.problem(f"final SIGTERM: exit code {code}")
    finally:
        submitter.stop.set()
        if server.process is not None and server.process.poll() is None:
            server.kill_group()
        lingering = wait_orphans_gone(ledger, 30.0)
    extra = {
        "workers_at_end": workers_ready,
        "orphans_lingering": lingering,
        "server_log": server_log_counts(server.log),
        "workdir": str(workdir),
        "wall_s": round(time.monotonic() - started, 1),
    }
    return build_report(args, ledger, figures, scan_files(server.files_dir, jobs), extra)


def main() -> int:
    args = parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cadenza-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    console.print(f"soak: work dir {workdir}")
    report = soak(args, workdir)
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"written {args.out}")
    if report["failures"] or args.keep:
        console.print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
