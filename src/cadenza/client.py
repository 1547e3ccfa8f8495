"""A small synchronous Python client for the Cadenza HTTP API (httpx).

    from cadenza.client import CadenzaClient

    with CadenzaClient("http://127.0.0.1:8000") as cadenza:
        job = cadenza.submit("drums", {"producer_style": "J Dilla", "bars": 4, "tempo": 90}, wait_s=30)
        job = cadenza.wait(job["id"])
        cadenza.download(job["id"], "groove.mid", Path("groove.mid"))

Errors of the API (RFC 9457 problems) raise :class:`CadenzaError` with the problem's fields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

FINAL = frozenset({"completed", "failed", "cancelled"})


class CadenzaError(RuntimeError):
    """An error answer of the API. ``status``: HTTP status; ``problem``: the problem+json body (or {})."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status, self.problem = status, problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}".strip())


class CadenzaClient:
    """Client of one Cadenza server. ``api_key`` is sent as ``Authorization: Bearer``; ``http`` lets
    callers pass their own ``httpx.Client`` (its base URL is then used as is)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own = http is None
        self.http = http if http is not None else httpx.Client(base_url=base_url, timeout=timeout_s)
        self.http.headers.update(headers)

    def __enter__(self) -> CadenzaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self.http.close()

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text}
            raise CadenzaError(response.status_code, problem if isinstance(problem, dict) else {})
        return response

    def submit(
        self,
        route: str,
        params: dict[str, Any],
        *,
        wait_s: float | None = None,
        idempotency_key: str | None = None,
        file: Path | None = None,
    ) -> dict[str, Any]:
        """``POST /v1/{route}``; with ``file``, a multipart upload whose form fields are ``params``.
        ``wait_s`` sends ``Prefer: wait=N``. Returns the job. Raises CadenzaError."""
        headers: dict[str, str] = {}
        if wait_s is not None:
            headers["Prefer"] = f"wait={wait_s:g}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        extra: dict[str, Any] = {} if wait_s is None else {"timeout": wait_s + 30}
        if file is None:
            response = self.http.post(f"/v1/{route}", json=params, headers=headers, **extra)
        else:
            fields = {k: json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in params.items()}
            with file.open("rb") as handle:
                response = self.http.post(
                    f"/v1/{route}", data=fields, files={"file": (file.name, handle)}, headers=headers, **extra
                )
        return self._check(response).json()

    def get(self, job_id: str) -> dict[str, Any]:
        return self._check(self.http.get(f"/v1/jobs/{job_id}")).json()

    def list(self, *, status: str | None = None, kind: str | None = None, limit: int = 50) -> Iterator[dict[str, Any]]:
        """Every job (newest first), following the cursor."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if kind:
            params["kind"] = kind
        while True:
            page = self._check(self.http.get("/v1/jobs", params=params)).json()
            yield from page["jobs"]
            if not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]

    def wait(self, job_id: str, timeout_s: float = 600.0, poll_s: float = 0.25) -> dict[str, Any]:
        """Poll until the job is completed, failed or cancelled. Raises TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job["status"] in FINAL:
                return job
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
            time.sleep(poll_s)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._check(self.http.post(f"/v1/jobs/{job_id}/cancel")).json()

    def delete(self, job_id: str) -> None:
        self._check(self.http.delete(f"/v1/jobs/{job_id}"))

    def download(self, job_id: str, name: str, dest: Path) -> Path:
        """Stream output ``name`` into ``dest`` (a file path, or a folder to put ``name`` in)."""
        target = dest / name if dest.is_dir() else dest
        with self.http.stream("GET", f"/v1/jobs/{job_id}/files/{name}") as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return target

    def events(self, job_id: str, last_event_id: int | None = None) -> Iterator[dict[str, Any]]:
        """The job's events (``{"sequence", "type", "data", "created_at"}``) until its final status."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        extra: dict[str, Any] = {"timeout": None} if self._own else {}  # an SSE stream may idle
        with self.http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, **extra) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            data: list[str] = []
            for line in response.iter_lines():
                if not line:
                    if data:
                        yield json.loads("\n".join(data))
                    data = []
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
