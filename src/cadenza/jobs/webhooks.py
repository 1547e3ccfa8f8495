"""Webhooks: signed, retried deliveries of job and batch events, sent by a background thread of the API server.

Messages follow the Standard Webhooks specification (https://www.standardwebhooks.com/, v1): headers
``webhook-id`` (the message id, the same on every attempt), ``webhook-timestamp`` (integer seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` under the server's ``whsec_`` secret,
signed by the spec's reference library (``standardwebhooks``, MIT). The body is
``{"type": "job.completed", "timestamp": <event time>, "sequence": <event number>, "data": <the job view>}``;
deliveries are sent concurrently, so receivers order a job's messages by ``sequence``.

The dispatcher never runs on a worker's or a request's path. It reads the events workers already write:
each job with a webhook keeps ``webhook_sequence``, the last event it looked at, and the dispatcher turns the
newer events its ``webhook_events`` asks for into ``webhook_deliveries`` rows (conditional update: one row per
event even with several API servers). Rows are then claimed (a lease on ``next_attempt_at``), sent and
recorded as ``webhook_attempts``: at-least-once, retried on timeouts, connection errors and non-2xx answers
after ``webhook_retry_base_s`` doubling up to ``webhook_retry_max_s`` (±20 % jitter) for
``webhook_retry_window_s``, stopped by 410 Gone. Being rows, deliveries survive a restart.
Addresses are checked by :mod:`cadenza.jobs.urls` just before connecting (the host normalised, then resolved),
to the checked IP; an address the policy refuses fails the delivery at once (it will not change by waiting),
while a name that does not resolve is retried; no redirect is followed; an attempt times out after
``webhook_timeout_s`` and keeps only 200 characters of the answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import secrets
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import IntegrityError
from standardwebhooks.webhooks import Webhook

import cadenza
from cadenza.db.models import Batch, Job, JobEvent, JobOutput, ServerSecret, WebhookAttempt, WebhookDelivery, utcnow
from cadenza.db.session import read_tx, write_tx
from cadenza.jobs import store
from cadenza.jobs.batches import batch_view
from cadenza.jobs.urls import WebhookAddressError, WebhookLookupError, WebhookPolicy, resolve_webhook
from cadenza.jobs.views import (
    FINAL,
    JobStatus,
    WebhookAttemptView,
    WebhookDeliveryView,
    job_links,
)
from cadenza.settings import Settings

if TYPE_CHECKING:
    from cadenza.jobs.service import JobService

log = structlog.get_logger(__name__)

SECRET_NAME = "webhook_secret"
EXCERPT_CHARS = 200
CLAIM_EXTRA_S = 30.0
"""A claimed delivery is retried after ``3 × webhook_timeout_s`` + this if its sender died mid-attempt."""


def make_secret() -> str:
    """A new signing secret as the spec writes it: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(value: str) -> str:
    """``value`` if it is ``whsec_<base64>`` of at least 24 bytes; else ValueError saying so."""
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook_secret must be 'whsec_' followed by base64") from None
    if not value.startswith("whsec_") or len(key) < 24:
        raise ValueError("webhook_secret must be 'whsec_' followed by the base64 of at least 24 random bytes")
    return value


def webhook_secret(settings: Settings, engine: Engine) -> str:
    """The signing secret: the ``webhook_secret`` setting, else the one stored in the database (generated and
    stored by the first server that asks; every process of one deployment shares it). Raises ValueError for a
    malformed setting."""
    if settings.webhook_secret is not None:
        return check_secret(settings.webhook_secret.get_secret_value())
    with read_tx(engine) as session:
        row = session.get(ServerSecret, SECRET_NAME)
        if row is not None:
            return row.value
    try:
        with write_tx(engine) as session:
            session.add(ServerSecret(name=SECRET_NAME, value=make_secret(), created_at=utcnow()))
        log.info("webhook_secret_generated")
    except IntegrityError:
        pass  # another process stored one first
    with read_tx(engine) as session:
        return session.get(ServerSecret, SECRET_NAME).value  # type: ignore[union-attr]


def webhook_event(event_type: str, data: dict[str, Any]) -> str | None:
    """The webhook event (``start``, ``progress``, ``output``, ``completed``) a job event is, or None."""
    if event_type == "status":
        status = data.get("status")
        if status == JobStatus.processing.value:
            return "start"
        return "completed" if status in {s.value for s in FINAL} else None
    return event_type if event_type in ("progress", "output") else None


MESSAGE_TYPES = {
    "start": "job.started",
    "progress": "job.progress",
    "output": "job.output",
    "completed": "job.completed",
}


def retry_delay_s(attempts: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Seconds before the next try after ``attempts`` failed ones: ``base_s × 2^(attempts-1)``, at most
    ``max_s``, times a jitter of 0.8–1.2 (so many receivers that failed together do not retry together)."""
    delay = min(max_s, base_s * 2 ** max(0, attempts - 1))
    return min(max_s, delay * (rng or random).uniform(0.8, 1.2))


def deliveries(
    engine: Engine, *, job_id: uuid.UUID | None = None, batch_id: uuid.UUID | None = None
) -> list[WebhookDeliveryView]:
    """The deliveries of a job (or of a batch's own ``batch.completed``) with their attempts, oldest first."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.created_at, WebhookDelivery.id)
    if job_id is not None:
        query = query.where(WebhookDelivery.job_id == job_id)
    else:
        query = query.where(WebhookDelivery.batch_id == batch_id, WebhookDelivery.job_id.is_(None))
    with read_tx(engine) as session:
        rows = list(session.scalars(query))
        attempts: dict[str, list[WebhookAttemptView]] = {row.id: [] for row in rows}
        if rows:
            for attempt in session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_(list(attempts)))
                .order_by(WebhookAttempt.attempt)
            ):
                attempts[attempt.delivery_id].append(
                    WebhookAttemptView(
                        attempt=attempt.attempt,
                        attempted_at=attempt.attempted_at,
                        status_code=attempt.status_code,
                        latency_ms=attempt.latency_ms,
                        error=attempt.error,
                        response_excerpt=attempt.response_excerpt,
                    )
                )
        return [
            WebhookDeliveryView(
                id=row.id,
                type=row.event_type,
                url=row.url,
                status=row.status,  # type: ignore[arg-type]
                attempts=attempts[row.id],
                created_at=row.created_at,
                next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
                finished_at=row.finished_at,
            )
            for row in rows
        ]


def job_deliveries(service: JobService, job_id: uuid.UUID, owner: str | None) -> list[WebhookDeliveryView]:
    """``GET /v1/jobs/{id}/webhooks``. Raises JobNotFound (unknown, or another owner's job)."""  # via get()
    service.get(job_id, owner)
    return deliveries(service.engine, job_id=job_id)


def _message(type_: str, timestamp: datetime, sequence: int, data: dict[str, Any]) -> str:
    """The body: ``type``, ``timestamp`` (the event's time), ``sequence`` (the job's event number, or the batch's
    ``sequence``: deliveries are concurrent, so receivers order by it), ``data`` (the view)."""
    body = {"type": type_, "timestamp": timestamp.isoformat(), "sequence": sequence, "data": data}
    return json.dumps(body, separators=(",", ":"))


class WebhookDispatcher:
    """The background sender (one per API server; several servers share the work through the database)."""

    def __init__(self, service: JobService) -> None:
        self.service = service
        self.settings = service.settings
        self.engine = service.engine
        self.signer = Webhook(webhook_secret(self.settings, self.engine))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(self.settings.webhook_concurrency, thread_name_prefix="cadenza-webhook")
        self._inflight: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.settings.webhook_timeout_s),
            follow_redirects=False,
            headers={"user-agent": f"Cadenza/{cadenza.__version__} (webhooks)"},
            trust_env=False,  # a proxy would connect to an address the dispatcher did not check
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cadenza-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop looking for work and wait (up to ``timeout_s``) for the attempts in flight."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = 0
            try:
                busy = self.run_once()
            except Exception:  # the database was away a moment: try again at the next tick
                log.exception("webhook_dispatch_failed")
            self._stop.wait(0.02 if busy else self.settings.webhook_poll_interval_s)

    def run_once(self) -> int:
        """Turn new events into deliveries and start the due ones; returns how much work it found."""
        found = self.collect()
        with self._lock:
            self._inflight = {f for f in self._inflight if not f.done()}
            room = self.settings.webhook_concurrency - len(self._inflight)
        due = self.claim(room) if room > 0 else []
        for delivery in due:
            future = self._pool.submit(self.deliver, *delivery)
            with self._lock:
                self._inflight.add(future)
        return found + len(due)

    # ------------------------------------------------------------------ events → deliveries
    def collect(self) -> int:
        """Create the deliveries of new job events and of batches that just completed; returns how many."""
        with read_tx(self.engine) as session:
            jobs = session.execute(
                select(Job.id, Job.webhook_sequence)
                .where(Job.webhook_sequence.is_not(None))
                .where(or_(Job.webhook_sequence < Job.sequence, Job.status.in_([s.value for s in FINAL])))
                .limit(100)
            ).all()
            open_batches = session.scalar(
                select(Batch.id)
                .where(Batch.completed_at.is_(None))
                .where(
                    ~select(Job.id)
                    .where(Job.batch_id == Batch.id, Job.status.notin_([s.value for s in FINAL]))
                    .exists()
                )
                .limit(1)
            )
        created = 0
        for job_id, _ in jobs:
            created += self._collect_job(job_id)
        if open_batches is not None:
            created += self._collect_batches()
        return created

    def _collect_job(self, job_id: uuid.UUID) -> int:
        with write_tx(self.engine) as session:
            job = session.get(Job, job_id)
            if job is None or job.webhook_sequence is None:
                return 0
            seen = job.webhook_sequence
            events = list(
                session.scalars(
                    select(JobEvent)
                    .where(JobEvent.job_id == job_id, JobEvent.sequence > seen, JobEvent.sequence <= job.sequence)
                    .order_by(JobEvent.sequence)
                )
            )
            final = JobStatus(job.status) in FINAL
            claimed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.webhook_sequence == seen)
                .values(webhook_sequence=None if final else job.sequence)
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed != 1:
                return 0  # another server took these events
            wanted = set(job.webhook_events or ["completed"])
            picked: list[tuple[str, JobEvent]] = []
            for event in events:
                name = webhook_event(event.type, event.data)
                if name is None or name not in wanted:
                    continue
                if name == "progress" and picked and picked[-1][0] == "progress":
                    picked[-1] = (name, event)  # one progress message per look: the latest
                else:
                    picked.append((name, event))
            if not picked:
                return 0
            outputs = list(session.scalars(select(JobOutput).where(JobOutput.job_id == job_id).order_by(JobOutput.id)))
            data = job_links(store.to_view(job, outputs))
            now = utcnow()
            for name, event in picked:
                session.add(
                    WebhookDelivery(
                        id="msg_" + uuid.uuid4().hex,
                        job_id=job_id,
                        batch_id=job.batch_id,
                        owner=job.owner,
                        url=job.webhook_url,
                        event_type=MESSAGE_TYPES[name],
                        payload=_message(MESSAGE_TYPES[name], event.created_at, event.sequence, data),
                        status="pending",
                        attempts=0,
                        created_at=now,
                        next_attempt_at=now,
                    )
                )
            return len(picked)

    def _collect_batches(self) -> int:
        created = 0
        with write_tx(self.engine) as session:
            for batch_id in self.service.batches.mark_completed(session):
                batch = session.get(Batch, batch_id)
                if batch is None or not batch.webhook_url:
                    continue
                view = batch_view(session, batch)
                now = utcnow()
                session.add(
                    WebhookDelivery(
                        id="msg_" + uuid.uuid4().hex,
                        job_id=None,
                        batch_id=batch_id,
                        owner=batch.owner,
                        url=batch.webhook_url,
                        event_type="batch.completed",
                        payload=_message(
                            "batch.completed", view.completed_at or now, view.sequence, view.model_dump(mode="json")
                        ),
                        status="pending",
                        attempts=0,
                        created_at=now,
                        next_attempt_at=now,
                    )
                )
                batch.notified_at = now
                created += 1
        return created

    # ------------------------------------------------------------------ sending
    def claim(self, limit: int) -> list[tuple[str, str, str, int, datetime]]:
        """Lease up to ``limit`` due deliveries: ``(id, url, payload, attempts, created_at)`` each."""
        now = utcnow()
        with read_tx(self.engine) as session:
            due = session.execute(
                select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            ).all()
        if not due:
            return []
        lease = now + timedelta(seconds=3 * self.settings.webhook_timeout_s + CLAIM_EXTRA_S)
        claimed = []
        with write_tx(self.engine) as session:
            for delivery_id, next_at in due:
                changed = session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at == next_at,
                    )
                    .values(next_attempt_at=lease)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if changed == 1:
                    row = session.get(WebhookDelivery, delivery_id)
                    assert row is not None
                    claimed.append((row.id, row.url, row.payload, row.attempts, row.created_at))
        return claimed

    def deliver(self, delivery_id: str, url: str, payload: str, attempts: int, created_at: datetime) -> None:
        """One attempt: check the address, POST the signed message to it, record the outcome. The URL is sent to
        its normalised host (``Host``, SNI) at the checked IP; an address the policy refuses (or a URL httpx cannot
        send) fails the delivery at once, without retries."""
        status_code: int | None = None
        error: str | None = None
        excerpt: str | None = None
        final = False
        attempted_at = utcnow()
        started = time.perf_counter()
        try:
            checked = resolve_webhook(url, WebhookPolicy.from_settings(self.settings))
            assert checked.ip is not None
            signature = self.signer.sign(delivery_id, attempted_at, payload)
            headers = {
                "content-type": "application/json",
                "host": checked.host_header,
                "webhook-id": delivery_id,
                "webhook-timestamp": str(int(attempted_at.timestamp())),
                "webhook-signature": signature,
            }
            target = httpx.URL(checked.url).copy_with(host=checked.ip, port=checked.port)
            extensions = {"sni_hostname": checked.host.name} if checked.parts.scheme == "https" else {}
            with self._client.stream(
                "POST", target, content=payload.encode(), headers=headers, extensions=extensions
            ) as r:
                status_code = r.status_code
                body = b""
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) >= EXCERPT_CHARS * 4:
                        break
                excerpt = body.decode("utf-8", "replace")[:EXCERPT_CHARS] or None
        except WebhookAddressError as exc:
            error, final = f"address refused, not retried: {exc}", True
        except httpx.InvalidURL as exc:
            error, final = f"the URL cannot be sent, not retried: {exc}", True
        except WebhookLookupError as exc:
            error = str(exc)
        except httpx.TimeoutException:
            error = f"timed out after {self.settings.webhook_timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        latency_ms = (time.perf_counter() - started) * 1000.0
        self._record(
            delivery_id, attempts + 1, attempted_at, created_at, status_code, latency_ms, error, excerpt, final=final
        )

    def _record(
        self,
        delivery_id: str,
        attempt: int,
        attempted_at: datetime,
        created_at: datetime,
        status_code: int | None,
        latency_ms: float,
        error: str | None,
        excerpt: str | None,
        *,
        final: bool = False,
    ) -> None:
        """Store the attempt and the delivery's next state; ``final``: failed now, whatever the retry window."""
        now = utcnow()
        values: dict[str, Any] = {"attempts": attempt}
        if final:
            values |= {"status": "failed", "finished_at": now, "next_attempt_at": None}
        elif status_code is not None and 200 <= status_code < 300:
            values |= {"status": "delivered", "finished_at": now, "next_attempt_at": None}
        elif status_code == 410:
            values |= {"status": "gone", "finished_at": now, "next_attempt_at": None}
        else:
            if error is None:
                error = f"the receiver answered {status_code}"
            delay = retry_delay_s(attempt, self.settings.webhook_retry_base_s, self.settings.webhook_retry_max_s)
            next_at = now + timedelta(seconds=delay)
            if (next_at - created_at).total_seconds() > self.settings.webhook_retry_window_s:
                values |= {"status": "failed", "finished_at": now, "next_attempt_at": None}
            else:
                values |= {"next_attempt_at": next_at}
        with write_tx(self.engine) as session:
            session.add(
                WebhookAttempt(
                    delivery_id=delivery_id,
                    attempt=attempt,
                    attempted_at=attempted_at,
                    status_code=status_code,
                    latency_ms=round(latency_ms, 2),
                    error=error[:500] if error else None,
                    response_excerpt=excerpt,
                )
            )
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending")
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        log.info(
            "webhook_attempt",
            delivery=delivery_id,
            attempt=attempt,
            status_code=status_code,
            error=error,
            outcome=values.get("status", "retry"),
        )


__all__ = [
    "WebhookDispatcher",
    "check_secret",
    "deliveries",
    "job_deliveries",
    "make_secret",
    "retry_delay_s",
    "webhook_event",
    "webhook_secret",
]
