"""The ``cadenza`` command line (Typer).

``serve`` runs the HTTP API (and local workers), ``worker`` runs workers only, ``jobs``/``keys``/
``models``/``config`` manage the installation directly, and every engine with a ``cli.py`` adds its own
commands (``cadenza drums``, ``cadenza separate``, ``cadenza train <kind>``, ``cadenza eval <kind>``).
Invalid configuration stops any command with exit code 2 and a message naming the key.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import structlog
import typer
import uvicorn
import yaml
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.table import Column, Table

from cadenza.cli.batch import batch as batch_command
from cadenza.settings import Settings, UnknownSettingError, load_settings

app = typer.Typer(
    name="cadenza",
    help="Cadenza: a self-hosted music-AI server behind one job API (each engine adds its commands below).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
jobs_app = typer.Typer(help="Inspect and manage jobs directly in the database.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
models_app = typer.Typer(help="Models the engines provide.", no_args_is_help=True)
config_app = typer.Typer(help="Effective configuration.", no_args_is_help=True)
train_app = typer.Typer(help="Train an engine's model.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate an engine's model.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")
app.add_typer(config_app, name="config")
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.command("batch")(batch_command)
BUILTIN_COMMANDS = frozenset({"serve", "worker", "jobs", "keys", "models", "config", "db", "train", "eval"})

console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file (keys as in `cadenza config show`).", show_default=False),
]

EXIT_CONFIG = 2


def describe_config_error(exc: Exception) -> str:
    """A readable message for invalid configuration: key, value and what is allowed."""
    if isinstance(exc, UnknownSettingError):
        return f"Invalid configuration: {exc}"
    assert isinstance(exc, ValidationError)
    lines = ["Invalid configuration:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(settings)"
        value = error.get("input")
        if key == "engines" and error["type"] == "value_error":  # an engine's section: the message names the key
            lines.append("  " + str(error["msg"]).removeprefix("Value error, "))
        elif error["type"] == "extra_forbidden":
            allowed = ", ".join(Settings.model_fields)
            lines.append(f"  unknown setting {key!r} (value {value!r}); allowed keys: {allowed}")
        else:
            lines.append(f"  {key} = {value!r}: {error['msg']}")
    return "\n".join(lines)


def get_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Effective settings, or exit 2 with a readable message (no traceback)."""
    if config is not None and not config.is_file():
        err.print(f"Invalid configuration: config file {str(config)!r} does not exist.")
        raise typer.Exit(EXIT_CONFIG)
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except (ValidationError, UnknownSettingError) as exc:
        err.print(describe_config_error(exc), markup=False, highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    except yaml.YAMLError as exc:
        err.print(f"Invalid configuration: {config} is not valid YAML: {exc}", markup=False)
        raise typer.Exit(EXIT_CONFIG) from None


def _setup_logging(settings: Settings) -> None:
    from cadenza.logging import configure_logging

    configure_logging(settings.log_format, settings.log_level)


def _sqlite_file(database_url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases or in-memory SQLite)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser().resolve()


def _service(settings: Settings) -> Any:
    """The job service of ``settings``; says so on stderr when it had to create a new SQLite database
    (a command run with other settings or in another installation than intended finds no jobs)."""
    from cadenza.jobs import JobService

    sqlite = _sqlite_file(settings.database_url)
    new = sqlite is not None and not sqlite.exists()
    service = JobService(settings)
    if new:
        err.print(f"Created a new, empty database at {sqlite} (data_dir {settings.data_dir}).", soft_wrap=True)
    return service


# --------------------------------------------------------------------------- serve / worker


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address (setting `host`).", show_default=False)] = None,
    port: Annotated[int | None, typer.Option(help="Port (setting `port`).", show_default=False)] = None,
    workers: Annotated[
        int | None, typer.Option(help="Local worker processes; 0 = use `cadenza worker`.", show_default=False)
    ] = None,
) -> None:
    """Run the HTTP API (and local worker processes). SIGTERM drains: running jobs finish first."""
    from cadenza.api.app import create_app

    settings = get_settings(config, host=host, port=port, workers=workers)
    _setup_logging(settings)
    flags = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    api = create_app(settings, settings_source=lambda: load_settings(config, **flags))  # SIGHUP re-reads
    uv_config = uvicorn.Config(
        api,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        # X-Forwarded-For picks the client IP (rate limits, failed-key limit, logs): trusted from the
        # configured proxies only, never by default (uvicorn's default trusts 127.0.0.1)
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=list(settings.forwarded_allow_ips),
    )
    server = DrainingServer(uv_config, api, settings.shutdown_timeout_s)
    server.run()
    if not server.started:
        raise typer.Exit(3)


class DrainingServer(uvicorn.Server):
    """Uvicorn server whose first SIGTERM/SIGINT stops intake (submit -> 503), drains the worker pool
    (running jobs finish, up to ``drain_timeout_s``) and only then shuts the server down.
    A second signal exits at once."""

    def __init__(self, config: uvicorn.Config, api: Any, drain_timeout_s: float) -> None:
        super().__init__(config)
        self.api, self.drain_timeout_s = api, drain_timeout_s
        self._drainer: threading.Thread | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Uvicorn's SIGTERM/SIGINT handling, plus SIGHUP for a hot reload while the server runs."""
        with super().capture_signals():
            if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
                yield
                return
            previous = signal.signal(signal.SIGHUP, self._reload)
            try:
                yield
            finally:
                signal.signal(signal.SIGHUP, previous)

    def _reload(self, sig: int, frame: Any) -> None:
        """SIGHUP: the same hot reload as ``POST /v1/admin/reload``, in a thread (it reads files)."""
        from cadenza.api.reload import ReloadFailed, reload_app

        def run() -> None:
            try:
                reload_app(self.api)
            except ReloadFailed as exc:
                structlog.get_logger("cadenza.serve").error("reload_failed", error=str(exc))

        threading.Thread(target=run, name="reload", daemon=True).start()

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self._drainer is not None:
            super().handle_exit(sig, frame)
            return
        self.api.state.draining = True
        self._drainer = threading.Thread(target=self._drain, args=(sig, frame), name="drain", daemon=True)
        self._drainer.start()

    def _drain(self, sig: int, frame: Any) -> None:
        log = structlog.get_logger("cadenza.serve")
        log.info("draining", signal=signal.Signals(sig).name, timeout_s=self.drain_timeout_s)
        pool = getattr(self.api.state, "executor", None)
        if pool is not None:
            pool.drain(self.drain_timeout_s)
        log.info("drained")
        # Not super().handle_exit(): uvicorn re-raises captured signals after shutdown, which would end the
        # process with -SIGTERM instead of a clean exit 0.
        self.should_exit = True


@app.command()
def worker(
    config: ConfigOption = None,
    queues: Annotated[
        str | None,
        typer.Option(
            help="executor celery: comma-separated queues to serve (default: every engine's).", show_default=False
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="cpu, cuda, cuda:N or auto for this worker (setting `device`).", show_default=False),
    ] = None,
) -> None:
    """Run worker processes only (scale-out) against the configured database, until SIGTERM.

    Never migrates the database (run `cadenza db upgrade` or `cadenza serve` first), so many workers can
    start together. With `executor: local` it polls the database and sweeps expired job leases of dead workers
    on any host; with `executor: celery` it is a Celery worker of Cadenza's app serving `--queues`, `workers`
    processes, one job each.
    """
    from cadenza.db.session import SchemaOutdated
    from cadenza.jobs import JobService, create_executor

    settings = get_settings(config, **({"device": device} if device else {}))
    _setup_logging(settings)
    if settings.workers < 1:
        err.print("Invalid configuration: workers = 0; `cadenza worker` needs workers >= 1.")
        raise typer.Exit(EXIT_CONFIG)
    if queues is not None and settings.executor != "celery":
        err.print("--queues needs executor: celery (local workers take every engine's jobs).")
        raise typer.Exit(EXIT_CONFIG)
    try:
        service = JobService(settings, migrate=False)
    except SchemaOutdated as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    if settings.executor == "celery":
        _celery_worker(settings, service, queues)
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    pool = create_executor(settings, service)
    pool.start()
    console.print(f"[green]{settings.workers} worker(s) running[/] against {settings.database_url}; Ctrl-C to stop.")
    while not stop.wait(1.0):
        pass
    console.print(f"Draining (up to {settings.shutdown_timeout_s:g} s)…")
    pool.drain(settings.shutdown_timeout_s)
    pool.stop()


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply the database migrations (Alembic `upgrade head`); a no-op when the schema is current."""
    from cadenza.db.session import make_engine, upgrade_database

    settings = get_settings(config)
    engine = make_engine(settings.database_url)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()
    console.print(f"Database schema is current: {settings.database_url.split('@')[-1]}")


def _celery_worker(settings: Settings, service: Any, queues: str | None) -> None:
    """A Celery worker of Cadenza's app (prefork, ``workers`` processes, prefetch 1, late acks); SIGTERM is
    Celery's warm shutdown: running jobs finish, nothing new is taken."""
    import socket

    from cadenza.jobs.celery_app import all_queues, init_worker, make_app

    known = all_queues(settings, list(service.registry.kinds))
    wanted = [q.strip() for q in queues.split(",") if q.strip()] if queues else known
    unknown = [q for q in wanted if q not in known]
    if unknown or not wanted:
        err.print(f"No engine is routed to queue(s) {', '.join(unknown) or '(none)'}; queues: {', '.join(known)}.")
        raise typer.Exit(EXIT_CONFIG)
    service.dispose()  # the processes open their own connections after the fork
    name = f"cadenza-{os.getpid()}.{settings.device}@{socket.gethostname()}"
    init_worker(settings, name, wanted)
    console.print(f"[green]Celery worker {name}[/]: {settings.workers} process(es), queues {', '.join(wanted)}.")
    make_app(settings).worker_main(
        [
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(settings.workers),
            "--queues",
            ",".join(wanted),
            "--hostname",
            name,
            "--prefetch-multiplier",
            "1",
            "--loglevel",
            "INFO",
            "--without-mingle",
        ]
    )


@app.command("workers")
def workers_list(config: ConfigOption = None) -> None:
    """List live Celery workers: their queues, device, processes and running jobs (executor celery)."""
    settings = get_settings(config)
    if settings.executor != "celery":
        console.print("executor: local — workers are the processes of `cadenza serve` and `cadenza worker`.")
        return
    from cadenza.jobs.celery_executor import CeleryExecutor

    executor = CeleryExecutor(settings, _service(settings))
    found = executor.workers()
    table = Table("worker", "queues", "device", "processes", "running", "models loaded", box=box.SIMPLE_HEAD)
    for item in found:
        table.add_row(
            item["name"],
            ",".join(item["queues"]),
            item["device"],
            str(item["concurrency"]),
            str(item["active"]),
            ", ".join(item["models"]),
        )
    console.print(table)
    depths = executor.queue_depths()
    console.print("broker queues: " + ", ".join(f"{q} {n}" for q, n in depths.items()))


# --------------------------------------------------------------------------- jobs


def _print_jobs(jobs: list[Any]) -> None:
    table = Table("kind", "status", "%", "created (UTC)", "run s", "owner", box=box.SIMPLE_HEAD)
    # Ids are never cut (they are what users copy): their column keeps its full width first.
    table.columns.insert(0, Column("id", no_wrap=True, min_width=36))
    for job in jobs:
        run_s = f"{job.run_duration_s:.2f}" if job.run_duration_s is not None else ""
        table.add_row(
            str(job.id),
            job.kind,
            job.status.value,
            f"{job.progress:.0f}",
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            run_s,
            job.owner or "",
        )
    console.print(table)


@jobs_app.command("list")
def jobs_list(
    config: ConfigOption = None,
    status: Annotated[str | None, typer.Option(help="queued|processing|completed|failed|cancelled")] = None,
    kind: Annotated[str | None, typer.Option(help="Job kind, e.g. drums.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
) -> None:
    """List jobs, newest first."""
    from cadenza.jobs import JobStatus

    settings = get_settings(config)
    try:
        status_value = JobStatus(status) if status else None
    except ValueError:
        err.print(f"Unknown status {status!r}; use one of {', '.join(s.value for s in JobStatus)}.")
        raise typer.Exit(EXIT_CONFIG) from None
    jobs, _ = _service(settings).list(None, status=status_value, kind=kind, limit=limit)
    _print_jobs(jobs)


def _job_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        err.print(f"{value!r} is not a job id (UUID).")
        raise typer.Exit(EXIT_CONFIG) from None


def _job_call(method: str, job_id: str, config: Path | None) -> Any:
    """``JobService.<method>(id)`` for a job id given on the command line; exit 1 if there is no such job."""
    from cadenza.jobs import JobNotFound

    service = _service(get_settings(config))
    try:
        return getattr(service, method)(_job_id(job_id))
    except JobNotFound:
        err.print(f"No job {job_id}.")
        raise typer.Exit(1) from None


@jobs_app.command("show")
def jobs_show(job_id: str, config: ConfigOption = None) -> None:
    """Show one job as JSON."""
    console.print_json(_job_call("get", job_id, config).model_dump_json())


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, config: ConfigOption = None) -> None:
    """Cancel a job (idempotent)."""
    job = _job_call("cancel", job_id, config)
    console.print(f"{job.id}: {job.status.value}")


@jobs_app.command("prune")
def jobs_prune(config: ConfigOption = None) -> None:
    """Delete finished jobs and their files past the retention periods."""
    settings = get_settings(config)
    with console.status("Pruning…"):
        counts = _service(settings).prune()
    console.print(", ".join(f"{name}: {count}" for name, count in counts.items()) or "nothing to prune")


# --------------------------------------------------------------------------- keys


@keys_app.command("create")
def keys_create(name: str, config: ConfigOption = None) -> None:
    """Create an API key; its secret is printed once."""
    secret, key = _service(get_settings(config)).keys.create(name)
    err.print(f"Created key {key.id} ({key.name}). Store the secret now; it is not shown again:")
    print(secret)


@keys_app.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List API keys (never their secrets)."""
    table = Table("id", "name", "prefix", "created (UTC)", "revoked (UTC)")
    for key in _service(get_settings(config)).keys.list():
        revoked = key.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if key.revoked_at else ""
        table.add_row(key.id, key.name, key.prefix + "…", key.created_at.strftime("%Y-%m-%d %H:%M:%S"), revoked)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: ConfigOption = None) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    try:
        key = _service(get_settings(config)).keys.revoke(key_id)
    except LookupError:
        err.print(f"No key {key_id}.")
        raise typer.Exit(1) from None
    console.print(f"Revoked {key.id} ({key.name}).")


# --------------------------------------------------------------------------- models / config


@models_app.command("list")
def models_list(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Every field (licence, data source, path) as JSON.")] = False,
) -> None:
    """List every engine's models and whether their weights are present (and, if not, which files to add)."""
    import dataclasses

    from cadenza.engines import registry

    settings = get_settings(config)
    infos = registry.of(settings).models(settings.models_dir)
    if as_json:
        print(json.dumps([dataclasses.asdict(info) for info in infos], indent=2))
        return
    table = Table("name", "engine", "version", "size MB", "weights", "licence")
    table.columns[0].no_wrap = True
    for info in infos:
        size = f"{info.size_bytes / 1e6:.1f}" if info.size_bytes is not None else ""
        weights = "[green]present[/]" if info.weights_present else "[red]missing[/]"
        table.add_row(info.name, info.engine, info.version, size, weights, info.licence.split(" (")[0])
    console.print(table)
    for info in infos:
        if not info.weights_present and info.missing_files:
            console.print(f"[bold]{info.name}[/]: add " + "; ".join(info.missing_files), soft_wrap=True)


@config_app.command("show")
def config_show(
    config: ConfigOption = None,
    output_format: Annotated[str, typer.Option("--format", help="yaml or json")] = "yaml",
    show_secrets: Annotated[
        bool,
        typer.Option(
            "--secrets",
            help="Print secrets in clear, including the webhook signing secret (generated and stored if unset).",
        ),
    ] = False,
) -> None:
    """Print the effective settings (defaults < YAML < CADENZA_* env), secrets masked unless --secrets."""
    if output_format not in ("yaml", "json"):
        err.print(f"--format must be yaml or json, not {output_format!r}.")
        raise typer.Exit(EXIT_CONFIG)
    settings = get_settings(config)
    data = settings.masked()
    if show_secrets:
        from cadenza.jobs.webhooks import webhook_secret

        data["admin_key"] = settings.admin_key.get_secret_value() if settings.admin_key else None
        data["webhook_secret"] = webhook_secret(settings, _service(settings).engine)
    if output_format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")


# --------------------------------------------------------------------------- engine commands


def _cli_plugins() -> tuple[str, ...]:
    """Plugin engines whose commands the CLI offers: ``CADENZA_PLUGINS`` (a JSON list, as for the setting).

    Read from the environment only, without validating the rest of the configuration, so that
    ``cadenza --help`` stays fast and works with a broken config file (which commands report).
    """
    raw = os.environ.get("CADENZA_PLUGINS", "").strip()
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def engine_cli_commands() -> list[tuple[str, str, str, str]]:
    """``(group, command name, target, help)`` of every engine's declared commands (``EngineSpec.commands``).

    Reading the registry imports only the engines' light packages; a command's module is imported when
    the command runs, so ``cadenza --help`` never loads torch.
    """
    from cadenza.engines import registry

    commands = []
    for spec in registry.for_plugins(_cli_plugins()).engines():
        for command in spec.commands:
            commands.append((command.group, command.name, command.target, command.help))
    return commands


def _lazy_command(group: typer.Typer, name: str, target: str, help_text: str) -> None:
    """Register ``name`` whose real Typer command is imported and built only when invoked."""

    @group.command(
        name,
        help=help_text,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def command(ctx: typer.Context) -> None:
        from cadenza.engines.base import resolve

        function = resolve(target)
        real = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        real.command(name, help=help_text)(function)
        exit_code = typer.main.get_command(real).main(args=ctx.args, prog_name=ctx.command_path, standalone_mode=False)
        if isinstance(exit_code, int) and exit_code != 0:
            raise typer.Exit(exit_code)


def register_engine_commands(root: typer.Typer) -> None:
    """Each engine command: ``cadenza <name>`` (group ""), ``cadenza train <name>``, ``cadenza eval <name>``,
    or any other group name as ``cadenza <group> <name>``. A name already taken is an error."""
    groups: dict[str, typer.Typer] = {"": root, "train": train_app, "eval": eval_app}
    used: dict[tuple[str, str], str] = {}
    for group, name, target, help_text in engine_cli_commands():
        if (group, name) in used or (group == "" and name in BUILTIN_COMMANDS):
            raise RuntimeError(f"engine command {group} {name} ({target}) is declared twice")
        used[(group, name)] = target
        if group not in groups:
            groups[group] = typer.Typer(help=f"{group.capitalize()} commands of the engines.", no_args_is_help=True)
        _lazy_command(groups[group], name, target, help_text)
    for group in sorted({g for g, _ in used if g}):
        root.add_typer(groups[group], name=group)


register_engine_commands(app)

if __name__ == "__main__":
    sys.exit(app())
