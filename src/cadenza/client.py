"""Python clients of the Cadenza HTTP API (httpx): :class:`CadenzaClient` and :class:`AsyncCadenzaClient`.

Example (runs as written against ``make serve``)::

    from pathlib import Path

    from cadenza.client import CadenzaClient

    with CadenzaClient("http://127.0.0.1:8000") as cadenza:
        job = cadenza.submit("drums", {"producer_style": "J Dilla", "bars": 4, "tempo": 90, "seed": 42})
        job = cadenza.wait(job["id"])
        path = cadenza.download(job["id"], "groove.mid", Path("."))

The clients respect the server:

- **Waiting** (:meth:`CadenzaClient.wait`) is a long-poll: ``GET /v1/jobs/{id}`` with
  ``Prefer: wait=N`` (RFC 7240) answers when the job's status changes or after N s (at most 60), so a
  5-minute job costs a handful of requests, not one every few hundred milliseconds.
- **Events** (:meth:`CadenzaClient.events`) follow the job's Server-Sent Events and, when the
  connection drops, reconnect with ``Last-Event-ID`` so no event is lost or repeated.
- **Pacing**: once a response says ``RateLimit-Remaining: 0``, the next request waits for
  ``RateLimit-Reset`` seconds, so a single client stays under the server's rate limit instead of
  running into it.
- **Back-off**: a ``429 Too Many Requests`` or ``503 Service Unavailable`` answer is retried after its
  ``Retry-After`` (seconds or an HTTP date; 1, 2, 4 … s when absent), at most ``max_retries`` times and
  never sleeping more than ``max_retry_wait_s`` at once; then :class:`CadenzaError` is raised. Both
  mean the request was not acted on, so retrying a submit cannot create a second job.

Errors of the API (RFC 9457 problems) raise :class:`CadenzaError` with the problem's fields.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

FINAL = frozenset({"completed", "failed", "cancelled"})
RETRY_STATUSES = frozenset({429, 503})
#: The server answers a long-poll after at most this many seconds (``prefer_wait_max_s``).
LONG_POLL_S = 60.0


class CadenzaError(RuntimeError):
    """An error answer of the API. ``status``: HTTP status; ``problem``: the problem+json body (or {})."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status, self.problem = status, problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}".strip())


def retry_after_s(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait before retrying ``response`` (a 429 or 503): its ``Retry-After`` header, as
    delta-seconds or an HTTP date (RFC 9110 §10.2.3), else ``2 ** attempt`` (1, 2, 4 … s)."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    if value:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            pass
    return float(2**attempt)


def check(response: httpx.Response) -> httpx.Response:
    """``response`` itself when it is not an error; raises :class:`CadenzaError` otherwise."""
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text}
        raise CadenzaError(response.status_code, problem if isinstance(problem, dict) else {})
    return response


def _submit_request(
    route: str,
    params: dict[str, Any],
    wait_s: float | None,
    idempotency_key: str | None,
    files: dict[str, Path],
) -> tuple[Callable[[ExitStack], dict[str, Any]], dict[str, Any]]:
    """A builder of the request's keyword arguments (it opens the files on the ``ExitStack`` it is given;
    called again for each retry) and extra httpx options."""
    headers: dict[str, str] = {}
    if wait_s is not None:
        headers["Prefer"] = f"wait={wait_s:g}"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    extra: dict[str, Any] = {} if wait_s is None else {"timeout": wait_s + 30}

    def build(stack: ExitStack) -> dict[str, Any]:
        if not files:
            return {"json": params, "headers": headers}
        parts = {}
        for name, path in files.items():
            handle = stack.enter_context(Path(path).open("rb"))  # noqa: SIM115 (closed by the stack)
            parts[name] = (Path(path).name, handle)
        return {"data": {"params": json.dumps(params)}, "files": parts, "headers": headers}

    return build, extra


def _with_options(
    params: dict[str, Any], priority: int | None, metadata: dict[str, Any] | None, **more: Any
) -> dict[str, Any]:
    """The request's fields plus the job-level options given (they travel beside the engine's fields):
    ``priority``, ``metadata``, ``webhook``, ``webhook_events_filter``."""
    options = {"priority": priority, "metadata": metadata, **more}
    return params | {name: value for name, value in options.items() if value is not None}


def _batch_body(
    jobs: list[dict[str, Any]],
    webhook: str | None,
    webhook_events_filter: list[str] | None,
    metadata: dict[str, Any] | None,
    priority: int | None,
) -> dict[str, Any]:
    return _with_options(
        {"jobs": jobs}, priority, metadata, webhook=webhook, webhook_events_filter=webhook_events_filter
    )


class _SSEParser:
    """Feeds Server-Sent Events lines; returns each event's decoded ``data`` at its blank line."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> dict[str, Any] | None:
        if line:
            if line.startswith("data:"):
                self._data.append(line[5:].lstrip())
            return None
        event = json.loads("\n".join(self._data)) if self._data else None
        self._data = []
        return event


def _is_final(event: dict[str, Any]) -> bool:
    return event.get("type") == "status" and event.get("data", {}).get("status") in FINAL


class _Options:
    def __init__(self, max_retries: int, max_retry_wait_s: float) -> None:
        self.max_retries, self.max_retry_wait_s = max_retries, max_retry_wait_s
        self.retries = 0  # how many 429/503 answers were waited out (for callers and tests)
        self._exhausted_until = 0.0  # monotonic time before which the server said no request is left

    def observe(self, response: httpx.Response) -> None:
        """Remember when the rate-limit window reopens once ``RateLimit-Remaining`` reached 0."""
        remaining, reset = response.headers.get("RateLimit-Remaining"), response.headers.get("RateLimit-Reset")
        if remaining == "0" and reset is not None and reset.isdigit():
            self._exhausted_until = time.monotonic() + min(float(reset), self.max_retry_wait_s)

    def pause_s(self) -> float:
        """Seconds to wait before the next request so that it is not a 429 (the IETF RateLimit headers)."""
        return max(0.0, self._exhausted_until - time.monotonic())

    def delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to sleep before retry ``attempt`` (0-based), or None to give up."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        self.retries += 1
        return min(retry_after_s(response, attempt), self.max_retry_wait_s)


class _Client:
    """What both clients share apart from I/O: options, request shapes, the long-poll schedule."""

    def __init__(self, http: Any, own: bool, api_key: str | None, max_retries: int, max_retry_wait_s: float) -> None:
        self.http, self._own = http, own
        if api_key:
            self.http.headers["Authorization"] = f"Bearer {api_key}"
        self._options = _Options(max_retries, max_retry_wait_s)
        # Timeouts are set per request only on our own client (a caller's client keeps its own).
        self._idle_ok: dict[str, Any] = {"timeout": None} if own else {}  # an SSE stream may idle

    @property
    def retries(self) -> int:
        return self._options.retries

    def _submit_args(
        self,
        route: str,
        params: dict[str, Any],
        wait_s: float | None,
        idempotency_key: str | None,
        file: Path | None,
        files: dict[str, Path] | None,
    ) -> tuple[Callable[[ExitStack], dict[str, Any]], dict[str, Any]]:
        inputs = dict(files or {}) | ({"file": file} if file is not None else {})
        build, extra = _submit_request(route, params, wait_s, idempotency_key, inputs)
        return build, extra if self._own else {}

    def _get_args(self, wait_s: float | None) -> dict[str, Any]:
        if wait_s is None:
            return {}
        return {"headers": {"Prefer": f"wait={wait_s:g}"}} | ({"timeout": wait_s + 30} if self._own else {})

    @staticmethod
    def _list_params(status: str | None, kind: str | None, limit: int) -> dict[str, Any]:
        return {"limit": limit} | ({"status": status} if status else {}) | ({"kind": kind} if kind else {})

    @staticmethod
    def _next_wait_s(job: dict[str, Any], deadline: float, timeout_s: float) -> float | None:
        """The next long-poll's ``wait_s``, None once the job is final. Raises TimeoutError."""
        if job["status"] in FINAL:
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"job {job['id']} still {job['status']} after {timeout_s} s")
        return max(1.0, min(LONG_POLL_S, remaining))


class CadenzaClient(_Client):
    """Synchronous client of one Cadenza server.

    ``api_key`` is sent as ``Authorization: Bearer``; ``http`` lets callers pass their own
    ``httpx.Client`` (its base URL is then used as is). ``max_retries`` and ``max_retry_wait_s`` bound
    the back-off on 429/503 (see the module docstring); ``retries`` counts the answers waited out.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 8,
        max_retry_wait_s: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        own = http is None
        http = http if http is not None else httpx.Client(base_url=base_url, timeout=timeout_s)
        super().__init__(http, own, api_key, max_retries, max_retry_wait_s)

    def __enter__(self) -> CadenzaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self.http.close()

    def _send(
        self, method: str, url: str, build: Callable[[ExitStack], dict[str, Any]], **extra: Any
    ) -> httpx.Response:
        """Send, retrying 429/503 after ``Retry-After``; returns the final response (unchecked)."""
        attempt = 0
        while True:
            time.sleep(self._options.pause_s())
            with ExitStack() as stack:
                response = self.http.request(method, url, **build(stack), **extra)
            self._options.observe(response)
            delay = self._options.delay(response, attempt)
            if delay is None:
                return response
            time.sleep(delay)
            attempt += 1

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return check(self._send(method, url, lambda stack: kwargs))

    def submit(
        self,
        route: str,
        params: dict[str, Any],
        *,
        wait_s: float | None = None,
        idempotency_key: str | None = None,
        file: Path | None = None,
        files: dict[str, Path] | None = None,
        priority: int | None = None,
        metadata: dict[str, Any] | None = None,
        webhook: str | None = None,
        webhook_events_filter: list[str] | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/{route}`` (``"drums"``, ``"separations"``): returns the job.

        ``files`` maps the engine's declared input names to local paths (``file`` is short for
        ``{"file": path}``); they go as ``multipart/form-data`` with ``params`` as its ``params`` part.
        ``wait_s`` sends ``Prefer: wait=N`` (the job comes back finished if it finishes within N s).
        ``priority`` (−10…10), ``metadata`` (a JSON object ≤ 4 KB), ``webhook`` (a URL told about the job,
        Standard Webhooks) and ``webhook_events_filter`` are the job-level options.
        Raises CadenzaError (after the 429/503 back-off)."""
        params = _with_options(params, priority, metadata, webhook=webhook, webhook_events_filter=webhook_events_filter)
        build, extra = self._submit_args(route, params, wait_s, idempotency_key, file, files)
        return check(self._send("POST", f"/v1/{route}", build, **extra)).json()

    def get(self, job_id: str, *, wait_s: float | None = None) -> dict[str, Any]:
        """``GET /v1/jobs/{id}``; with ``wait_s`` (≤ 60) a long-poll answered when the status changes."""
        return self._call("GET", f"/v1/jobs/{job_id}", **self._get_args(wait_s)).json()

    def list(self, *, status: str | None = None, kind: str | None = None, limit: int = 50) -> Iterator[dict[str, Any]]:
        """Every job (newest first), following the cursor; ``limit`` is the page size (1–100)."""
        params = self._list_params(status, kind, limit)
        while True:
            page = self._call("GET", "/v1/jobs", params=params).json()
            yield from page["jobs"]
            if not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]

    def wait(self, job_id: str, timeout_s: float = 3600.0) -> dict[str, Any]:
        """Long-poll until the job is completed, failed or cancelled (one request per status change or
        per 60 s). Returns the job; raises TimeoutError after ``timeout_s`` and CadenzaError."""
        deadline = time.monotonic() + timeout_s
        job = self.get(job_id)
        while (wait_s := self._next_wait_s(job, deadline, timeout_s)) is not None:
            job = self.get(job_id, wait_s=wait_s)
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/jobs/{job_id}/cancel").json()

    def retry(self, job_id: str) -> dict[str, Any]:
        """``POST /v1/jobs/{id}/retry``: a new job like a failed or cancelled one (its ``retry_of`` names it)."""
        return self._call("POST", f"/v1/jobs/{job_id}/retry").json()

    def batch(
        self,
        jobs: list[dict[str, Any]],
        *,
        webhook: str | None = None,
        webhook_events_filter: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/batches``: up to 100 jobs, each ``{"kind": "drums", "params": {...}}`` plus optional
        ``inputs`` (``POST /v1/uploads`` ids by input name) and job options; all are created or none (a
        CadenzaError 422 lists every invalid job's index and field). Returns the batch."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = _batch_body(jobs, webhook, webhook_events_filter, metadata, priority)
        return self._call("POST", "/v1/batches", json=body, headers=headers).json()

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        """``GET /v1/batches/{id}``: ``counts`` per status, ``progress`` and the ``jobs``."""
        return self._call("GET", f"/v1/batches/{batch_id}").json()

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/batches/{batch_id}/cancel").json()

    def batch_events(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """The batch view at each change (Server-Sent Events) until every job is final; a dropped connection
        is resumed with ``Last-Event-ID``. Raises CadenzaError."""
        yield from self._follow(f"/v1/batches/{batch_id}/events", None, lambda view: view["status"] == "completed")

    def wait_batch(self, batch_id: str) -> dict[str, Any]:
        """Follow the batch until every job is final; returns its last view (the stream starts with the current
        one, so a finished batch answers at once)."""
        view: dict[str, Any] = {}
        for view in self.batch_events(batch_id):  # noqa: B007 (the last one is returned)
            pass
        return view

    def delete(self, job_id: str) -> None:
        self._call("DELETE", f"/v1/jobs/{job_id}")

    def download(self, job_id: str, name: str, dest: Path) -> Path:
        """Stream output ``name`` into ``dest`` (a file path, or a folder to put ``name`` in); returns the
        path written. Raises CadenzaError (409 while the job runs; 410 once its files are pruned)."""
        target = Path(dest) / name if Path(dest).is_dir() else Path(dest)
        partial = target.with_name(target.name + ".part")
        try:
            with self._stream(f"/v1/jobs/{job_id}/files/{name}") as response, partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
            os.replace(partial, target)  # complete files only: a dropped download leaves nothing
        finally:
            partial.unlink(missing_ok=True)
        return target

    @contextmanager
    def _stream(self, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed GET that paces, and retries 429/503 after ``Retry-After``, like every other call."""
        attempt = 0
        while True:
            time.sleep(self._options.pause_s())
            with self.http.stream("GET", url, **kwargs) as response:
                self._options.observe(response)
                if response.status_code < 400:
                    yield response
                    return
                response.read()
                delay = self._options.delay(response, attempt)
                if delay is None:
                    check(response)
            time.sleep(delay)
            attempt += 1

    def events(self, job_id: str, last_event_id: int | None = None) -> Iterator[dict[str, Any]]:
        """The job's events (``{"sequence", "type", "data", "created_at"}``) after ``last_event_id``,
        until its final status. A dropped connection is resumed with ``Last-Event-ID`` (at most
        ``max_retries`` times in a row without a new event). Raises CadenzaError."""
        yield from self._follow(f"/v1/jobs/{job_id}/events", last_event_id, _is_final)

    def _follow(self, url: str, after: int | None, last: Callable[[dict[str, Any]], bool]) -> Iterator[dict[str, Any]]:
        """Each Server-Sent Event's data (every one carries ``sequence``, its id) until ``last(data)``, resuming a
        dropped connection with ``Last-Event-ID``."""
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(after)} if after is not None else {}
            parser = _SSEParser()
            try:
                with self._stream(url, headers=headers, **self._idle_ok) as response:
                    for line in response.iter_lines():
                        data = parser.feed(line)
                        if data is None:
                            continue
                        after, failures = data["sequence"], 0
                        yield data
                        if last(data):
                            return
            except httpx.TransportError:
                failures += 1
                if failures > self._options.max_retries:
                    raise
                time.sleep(min(2.0**failures, self._options.max_retry_wait_s))
                continue
            return  # the server closed the stream cleanly (a deleted job)


class AsyncCadenzaClient(_Client):
    """The asyncio twin of :class:`CadenzaClient` (same methods, awaited; ``events`` is an async iterator)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 8,
        max_retry_wait_s: float = 60.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        own = http is None
        http = http if http is not None else httpx.AsyncClient(base_url=base_url, timeout=timeout_s)
        super().__init__(http, own, api_key, max_retries, max_retry_wait_s)

    async def __aenter__(self) -> AsyncCadenzaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own:
            await self.http.aclose()

    async def _send(
        self, method: str, url: str, build: Callable[[ExitStack], dict[str, Any]], **extra: Any
    ) -> httpx.Response:
        attempt = 0
        while True:
            await asyncio.sleep(self._options.pause_s())
            with ExitStack() as stack:
                response = await self.http.request(method, url, **build(stack), **extra)
            self._options.observe(response)
            delay = self._options.delay(response, attempt)
            if delay is None:
                return response
            await asyncio.sleep(delay)
            attempt += 1

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return check(await self._send(method, url, lambda stack: kwargs))

    async def submit(
        self,
        route: str,
        params: dict[str, Any],
        *,
        wait_s: float | None = None,
        idempotency_key: str | None = None,
        file: Path | None = None,
        files: dict[str, Path] | None = None,
        priority: int | None = None,
        metadata: dict[str, Any] | None = None,
        webhook: str | None = None,
        webhook_events_filter: list[str] | None = None,
    ) -> dict[str, Any]:
        """See :meth:`CadenzaClient.submit`."""
        params = _with_options(params, priority, metadata, webhook=webhook, webhook_events_filter=webhook_events_filter)
        build, extra = self._submit_args(route, params, wait_s, idempotency_key, file, files)
        return check(await self._send("POST", f"/v1/{route}", build, **extra)).json()

    async def get(self, job_id: str, *, wait_s: float | None = None) -> dict[str, Any]:
        """See :meth:`CadenzaClient.get`."""
        return (await self._call("GET", f"/v1/jobs/{job_id}", **self._get_args(wait_s))).json()

    async def wait(self, job_id: str, timeout_s: float = 3600.0) -> dict[str, Any]:
        """See :meth:`CadenzaClient.wait`."""
        deadline = time.monotonic() + timeout_s
        job = await self.get(job_id)
        while (wait_s := self._next_wait_s(job, deadline, timeout_s)) is not None:
            job = await self.get(job_id, wait_s=wait_s)
        return job

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return (await self._call("POST", f"/v1/jobs/{job_id}/cancel")).json()

    async def retry(self, job_id: str) -> dict[str, Any]:
        """See :meth:`CadenzaClient.retry`."""
        return (await self._call("POST", f"/v1/jobs/{job_id}/retry")).json()

    async def batch(
        self,
        jobs: list[dict[str, Any]],
        *,
        webhook: str | None = None,
        webhook_events_filter: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """See :meth:`CadenzaClient.batch`."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = _batch_body(jobs, webhook, webhook_events_filter, metadata, priority)
        return (await self._call("POST", "/v1/batches", json=body, headers=headers)).json()

    async def get_batch(self, batch_id: str) -> dict[str, Any]:
        return (await self._call("GET", f"/v1/batches/{batch_id}")).json()

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return (await self._call("POST", f"/v1/batches/{batch_id}/cancel")).json()

    async def delete(self, job_id: str) -> None:
        await self._call("DELETE", f"/v1/jobs/{job_id}")

    async def download(self, job_id: str, name: str, dest: Path) -> Path:
        """See :meth:`CadenzaClient.download`."""
        target = Path(dest) / name if Path(dest).is_dir() else Path(dest)
        partial = target.with_name(target.name + ".part")
        try:
            async with self._stream(f"/v1/jobs/{job_id}/files/{name}") as response:
                with partial.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    @asynccontextmanager
    async def _stream(self, url: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        """See :meth:`CadenzaClient._stream`."""
        attempt = 0
        while True:
            await asyncio.sleep(self._options.pause_s())
            async with self.http.stream("GET", url, **kwargs) as response:
                self._options.observe(response)
                if response.status_code < 400:
                    yield response
                    return
                await response.aread()
                delay = self._options.delay(response, attempt)
                if delay is None:
                    check(response)
            await asyncio.sleep(delay)
            attempt += 1

    async def list(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 50
    ) -> AsyncIterator[dict[str, Any]]:
        """See :meth:`CadenzaClient.list`."""
        params = self._list_params(status, kind, limit)
        while True:
            page = (await self._call("GET", "/v1/jobs", params=params)).json()
            for job in page["jobs"]:
                yield job
            if not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]

    async def events(self, job_id: str, last_event_id: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """See :meth:`CadenzaClient.events`."""
        async for event in self._follow(f"/v1/jobs/{job_id}/events", last_event_id, _is_final):
            yield event

    async def _follow(
        self, url: str, after: int | None, last: Callable[[dict[str, Any]], bool]
    ) -> AsyncIterator[dict[str, Any]]:
        """See :meth:`CadenzaClient._follow`."""
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(after)} if after is not None else {}
            parser = _SSEParser()
            try:
                async with self._stream(url, headers=headers, **self._idle_ok) as response:
                    async for line in response.aiter_lines():
                        data = parser.feed(line)
                        if data is None:
                            continue
                        after, failures = data["sequence"], 0
                        yield data
                        if last(data):
                            return
            except httpx.TransportError:
                failures += 1
                if failures > self._options.max_retries:
                    raise
                await asyncio.sleep(min(2.0**failures, self._options.max_retry_wait_s))
                continue
            return
