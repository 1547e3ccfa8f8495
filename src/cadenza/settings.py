"""Effective configuration: defaults < YAML file (``--config`` / ``CADENZA_CONFIG``) < ``CADENZA_*`` env.

Defaults need nothing else installed: everything lives in one data folder, ``data_dir`` (the
platform's user data folder from ``platformdirs``: ``~/.local/share/cadenza`` on Linux, honouring
``XDG_DATA_HOME``), so every command finds the same installation whatever the current folder: SQLite
at ``<data_dir>/cadenza.db``, files under ``<data_dir>/files``, models under ``<data_dir>/models``;
one worker process, http://127.0.0.1:8000.

Engines own their settings: ``engines.<kind>.<key>`` in YAML, ``CADENZA_ENGINES__<KIND>__<KEY>`` in
the environment, validated against the engine's ``settings_model`` with the same clear errors, and read
with ``settings.engine(kind)``. This module never names an engine.
"""

from __future__ import annotations

import ipaddress
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

_CONFIG_FILE: ContextVar[Path | None] = ContextVar("cadenza_config_file", default=None)
"""The YAML file :func:`load_settings` reads (never written into ``os.environ``)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CADENZA_", extra="forbid", validate_default=True, env_nested_delimiter="__"
    )

    # Engines
    plugins: list[str] = Field(
        default_factory=list,
        description="Import paths of extra engine packages (each exposes ENGINE), added to the built-in engines.",
    )
    engines: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-engine settings sections, `engines.<kind>.<key>` (see `cadenza config show`).",
    )

    # Server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    cors_origins: list[str] = Field(default_factory=list, description="Allowed CORS origins; empty = none.")
    forwarded_allow_ips: list[str] = Field(
        default_factory=list,
        description="IPs or CIDR networks of the reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` "
        "`cadenza serve` trusts (the client IP of rate limits and logs); empty = none, those headers are ignored.",
    )
    shutdown_timeout_s: float = Field(30.0, ge=0, description="SIGTERM: how long running jobs may finish.")

    # Storage
    data_dir: Path = Field(
        default_factory=lambda: platformdirs.user_data_path("cadenza"),
        description="Home of the defaults below: the platform's user data folder (~/.local/share/cadenza "
        "on Linux; XDG_DATA_HOME honoured).",
    )
    database_url: str = Field(None, description="SQLAlchemy URL; default sqlite:///<data_dir>/cadenza.db.")  # type: ignore[assignment]
    files_dir: Path = Field(None, description="Job files and uploads; default <data_dir>/files.")  # type: ignore[assignment]
    models_dir: Path = Field(None, description="Large public weights (Demucs); default <data_dir>/models.")  # type: ignore[assignment]
    min_free_disk_mb: int = Field(500, ge=0, description="/ready fails below this much free disk.")

    # Workers
    executor: Literal["local", "celery"] = Field(
        "local",
        description="Who runs jobs: `local` worker processes of `cadenza serve`, or `celery`: `cadenza worker` "
        "processes on any host, fed through `broker_url` (Redis), with a PostgreSQL `database_url`.",
    )
    workers: int = Field(
        1,
        ge=0,
        le=64,
        description="Local worker processes started by `cadenza serve`; with `celery`, each `cadenza worker`'s "
        "processes (one job each).",
    )
    broker_url: str | None = Field(None, description="The Celery broker (Redis), e.g. redis://host:6379/0.")
    queues: dict[str, str] = Field(
        default_factory=dict,
        description='Celery queue per engine kind (default: the kind), e.g. {"separation": "gpu", "drums": "cpu"}.',
    )
    celery_resend_after_s: float = Field(
        30.0, gt=0, description="Queued this long with no message left in the broker: the job is sent again."
    )
    device: str = Field("cpu", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    job_timeout_s: float = Field(600.0, gt=0)
    max_queued_jobs: int = Field(
        1000, ge=1, description="Overload guard: submits answer 503 + Retry-After while this many jobs are queued."
    )
    worker_poll_interval_s: float = Field(
        0.5, gt=0, le=60, description="How often an idle worker polls the database for jobs submitted elsewhere."
    )
    job_lease_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="A running job's lease, renewed by its worker's heartbeats (every third of it); a job whose "
        "lease expired (its worker died, on any host) is re-queued once or failed.",
    )

    # Retention (hours; 0 = keep forever)
    retention_completed_h: float = Field(24.0, ge=0)
    retention_failed_h: float = Field(72.0, ge=0)
    retention_uploads_h: float = Field(24.0, ge=0, description="Files of `POST /v1/uploads` expire after this.")
    cleanup_interval_s: float = Field(300.0, gt=0)

    # Security and limits
    auth_enabled: bool = Field(False, description="Require API keys (`cadenza keys create`).")
    admin_key: SecretStr | None = Field(None, description="Bootstrap key accepted in addition to stored keys.")
    rate_limit: str = Field("120/minute", description="Per key (or client IP), `limits` notation.")
    max_body_bytes: int = Field(1_000_000, gt=0, description="JSON request bodies.")
    max_upload_bytes: int = Field(
        200 * 1024 * 1024,
        gt=0,
        description="Any uploaded file (`POST /v1/uploads`); each engine input also has its own limit.",
    )
    prefer_wait_max_s: float = Field(60.0, ge=0, le=60)
    max_batch_jobs: int = Field(100, ge=1, le=1000, description="Jobs in one `POST /v1/batches`.")

    # Webhooks (Standard Webhooks: https://www.standardwebhooks.com/)
    webhook_secret: SecretStr | None = Field(
        None,
        description="Signing secret, `whsec_<base64>`; when unset, one is generated on first start and kept in "
        "the database (`cadenza config show --secrets` prints it).",
    )
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names or IPs webhooks may also reach over http and on private or loopback addresses.",
    )
    webhook_allow_self: bool = Field(
        False,
        description="Let webhooks reach this server's own address (`host`:`port`, or any loopback spelling of it "
        "when it listens on loopback or 0.0.0.0), refused otherwise even when webhook_allowed_hosts allows it.",
    )
    webhook_retry_base_s: float = Field(5.0, gt=0, description="First retry delay; doubles per attempt.")
    webhook_retry_max_s: float = Field(3600.0, gt=0, description="Longest delay between two attempts.")
    webhook_retry_window_s: float = Field(86400.0, gt=0, description="A delivery is retried for this long.")
    webhook_timeout_s: float = Field(5.0, gt=0, le=60, description="One attempt's connect + answer limit.")
    webhook_concurrency: int = Field(4, ge=1, le=64, description="Deliveries sent at once by one server.")
    webhook_poll_interval_s: float = Field(0.25, gt=0, description="How often the dispatcher looks for work.")

    @model_validator(mode="after")
    def _celery_needs(self) -> Settings:
        if self.executor == "celery":
            if not self.broker_url:
                raise ValueError("executor 'celery' needs broker_url (a Redis URL, e.g. redis://127.0.0.1:6379/0)")
            if self.database_url.startswith("sqlite"):
                raise ValueError(
                    "executor 'celery' needs a PostgreSQL database_url (postgresql+psycopg://…): workers on other "
                    "hosts share it, and SQLite is refused for this executor"
                )
        return self

    @field_validator("data_dir")
    @classmethod
    def _expand_data_dir(cls, value: Path) -> Path:
        return Path(value).expanduser().resolve()

    @field_validator("database_url", mode="before")
    @classmethod
    def _default_database(cls, value: str | None, info: ValidationInfo) -> str:
        if value:
            return value
        return f"sqlite:///{info.data.get('data_dir', Path('.').resolve()) / 'cadenza.db'}"

    @field_validator("files_dir", "models_dir", mode="before")
    @classmethod
    def _expand(cls, value: Path | str | None, info: ValidationInfo) -> Path:
        if value is None or value == "":
            value = info.data.get("data_dir", Path(".")) / info.field_name.removesuffix("_dir")
        return Path(value).expanduser().resolve()  # absolute, so workers and logs agree whatever the cwd

    @field_validator("engines")
    @classmethod
    def _engines(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Validate each section against its engine's ``settings_model`` (defaults for absent ones)."""
        from cadenza.engines import registry

        try:
            engines = registry.for_plugins(tuple(info.data.get("plugins") or ()))
        except registry.RegistryError as exc:
            raise ValueError(str(exc)) from None
        unknown = sorted(set(value) - set(engines.kinds))
        if unknown:
            raise ValueError(f"unknown engine(s) {', '.join(unknown)}; engines: {', '.join(engines.kinds)}")
        sections: dict[str, Any] = {}
        for kind in engines.kinds:
            model = engines.get(kind).settings_model
            raw = value.get(kind)
            if model is None:
                if raw:
                    raise ValueError(f"engine {kind!r} has no settings")
                continue
            if isinstance(raw, BaseModel):
                raw = raw.model_dump()
            try:
                sections[kind] = model.model_validate(raw or {})
            except ValidationError as exc:
                raise ValueError(_describe_section(kind, model, exc)) from None
        return sections

    def engine(self, kind: str) -> Any:
        """The settings section of engine ``kind`` (its ``settings_model``). Raises KeyError."""
        return self.engines[kind]

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _forwarded_allow_ips(cls, value: list[str]) -> list[str]:
        checked = []
        for item in value:
            try:
                network = ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network such as '10.0.0.0/8'") from None
            checked.append(str(network) if "/" in item else str(network.network_address))
        return checked

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("must be `limits` notation such as '120/minute' or '10 per second'") from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = _CONFIG_FILE.get() or os.environ.get("CADENZA_CONFIG")
        if config:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config))
        return tuple(sources)

    def masked(self) -> dict[str, Any]:
        """Settings as a JSON-able dict with secrets replaced by ``'**********'``."""
        return self.model_dump(mode="json")


CLIENT_ENV = ("CADENZA_URL", "CADENZA_API_KEY")
"""Variables of the CLI's client commands (``cadenza batch``): the server's URL and an API key, not settings."""


class UnknownSettingError(ValueError):
    """``CADENZA_*`` environment variables that name no setting (pydantic-settings ignores them)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        allowed = ", ".join(f"CADENZA_{name.upper()}" for name in Settings.model_fields)
        super().__init__(f"unknown setting(s) {', '.join(names)}; allowed: CADENZA_CONFIG, {allowed}")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the effective settings.

    Raises ``UnknownSettingError`` for ``CADENZA_*`` environment variables that name no setting and
    ``pydantic.ValidationError`` on any other invalid configuration (unknown YAML key, wrong type, range).
    """
    known = {f"CADENZA_{name.upper()}" for name in Settings.model_fields} | {"CADENZA_CONFIG", *CLIENT_ENV}
    unknown = sorted(
        name
        for name in os.environ
        if name.upper().startswith("CADENZA_")
        and name.upper() not in known
        and not name.upper().startswith("CADENZA_ENGINES__")
    )
    if unknown:
        raise UnknownSettingError(unknown)
    token = _CONFIG_FILE.set(Path(config_file) if config_file is not None else None)
    try:
        return Settings(**overrides)
    finally:
        _CONFIG_FILE.reset(token)


def _describe_section(kind: str, model: type[BaseModel], exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        key = ".".join(["engines", kind, *(str(p) for p in error["loc"])])
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown setting {key!r}; allowed: {', '.join(model.model_fields)}")
        else:
            parts.append(f"{key} = {error.get('input')!r}: {error['msg']}")
    return "; ".join(parts)
