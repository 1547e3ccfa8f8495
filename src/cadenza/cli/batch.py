"""``cadenza batch FILE.jsonl``: submit a JSON-lines file of jobs as one batch to a running server and follow it.

Each non-blank line (``#`` starts a comment line) is one job as ``POST /v1/batches`` takes it:
``{"kind": "drums", "params": {"producer_style": "J Dilla", "bars": 4, "seed": 1}}``, optionally with
``inputs`` (``POST /v1/uploads`` ids), ``priority``, ``metadata``, ``webhook``. The batch is created whole or not at
all; a rich progress bar follows its Server-Sent Events; ``--download`` saves every output.
Exit code: 0 when every job completed, 1 when any failed or was cancelled (or the server refused the batch),
2 for an unreadable file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cadenza.client import FINAL, CadenzaClient, CadenzaError

console = Console()
err = Console(stderr=True)


def read_jobs(path: Path) -> list[dict[str, Any]]:
    """The jobs of a JSON-lines file. Raises ValueError naming the line that is not a JSON object."""
    jobs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            job = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(job, dict):
            raise ValueError(f"{path}:{number}: each line must be a JSON object with 'kind' and 'params'")
        jobs.append(job)
    if not jobs:
        raise ValueError(f"{path}: no jobs (one JSON object per line)")
    return jobs


def batch(
    file: Annotated[Path, typer.Argument(help="JSON lines: one job per line, as POST /v1/batches takes it.")],
    server: Annotated[str, typer.Option(envvar="CADENZA_URL", help="The server's base URL.")] = "http://127.0.0.1:8000",
    api_key: Annotated[str | None, typer.Option(envvar="CADENZA_API_KEY", help="API key (auth on).")] = None,
    webhook: Annotated[str | None, typer.Option(help="A URL told about each job and the batch.")] = None,
    events: Annotated[
        str | None, typer.Option(help="Webhook events, comma-separated: start,progress,output,completed.")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Resubmitting with it returns the same batch.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the batch until every job is final.")] = True,
    download: Annotated[Path | None, typer.Option(help="Save every completed job's outputs in this folder.")] = None,
) -> None:
    """Submit a JSON-lines file of jobs as one batch (all or none) and follow it with a progress bar."""
    try:
        jobs = read_jobs(file)
    except (OSError, ValueError) as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    filters = [e.strip() for e in events.split(",") if e.strip()] if events else None
    with CadenzaClient(server, api_key=api_key) as client:
        try:
            view = client.batch(jobs, webhook=webhook, webhook_events_filter=filters, idempotency_key=idempotency_key)
        except CadenzaError as exc:
            err.print(f"[red]The batch was refused ({exc.status}):[/] {exc.problem.get('detail', '')}")
            for error in exc.problem.get("errors", [])[:20]:
                err.print(f"  {'.'.join(map(str, error.get('loc', [])))}: {error.get('msg')}")
            raise typer.Exit(1) from None
        console.print(f"Batch [bold]{view['id']}[/]: {view['size']} jobs")
        if not wait:
            return
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("jobs", total=view["size"], counts="")
            for view in client.batch_events(view["id"]):  # noqa: B020 (the last view is the result)
                done = sum(view["counts"].get(status, 0) for status in FINAL)
                counts = " ".join(f"{k} {v}" for k, v in view["counts"].items() if v)
                progress.update(task, completed=done, counts=counts)
        _report(client, view, download)
        if view["counts"].get("failed") or view["counts"].get("cancelled"):
            raise typer.Exit(1)


def _report(client: CadenzaClient, view: dict[str, Any], download: Path | None) -> None:
    table = Table("#", "job", "kind", "status", "error / files", box=box.SIMPLE_HEAD)
    if download is not None:
        download.mkdir(parents=True, exist_ok=True)
    for item in view["jobs"]:
        note = ""
        if item["status"] != "completed" or download is not None:
            job = client.get(item["id"])
            if job.get("error"):
                note = job["error"]["message"]
            elif download is not None:
                names = [
                    client.download(job["id"], o["name"], download / o["download_name"]).name for o in job["outputs"]
                ]
                note = ", ".join(names)
        table.add_row(str(item["index"]), item["id"], item["kind"], item["status"], note)
    console.print(table)
