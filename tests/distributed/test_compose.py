"""CI cannot run containers here: check that deploy/compose.yaml's commands are ones the CLI accepts and that its
settings validate (the same parsing as at start-up), and that the image recipe's command is accepted too."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer.main
import yaml

from cadenza.cli.main import app
from cadenza.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _accepted(args: list[str]) -> None:
    """Parse ``cadenza <args>`` as the CLI would, without running it (its click raises a usage error otherwise)."""
    assert args[0] == "cadenza"
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="cadenza")
    name, command, rest = group.resolve_command(ctx, list(args[1:]))
    assert command is not None, name
    command.make_context(name, rest, parent=ctx)


def test_the_check_refuses_what_the_cli_refuses() -> None:
    _accepted(["cadenza", "worker", "--queues", "cpu"])
    with pytest.raises(Exception, match="--queuez"):
        _accepted(["cadenza", "worker", "--queuez", "cpu"])


def _services() -> dict[str, dict]:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    return {name: s for name, s in compose["services"].items() if s.get("image", "").startswith("cadenza")}


def test_compose_runs_an_api_and_workers_per_queue() -> None:
    services = _services()
    assert {"api", "worker-cpu", "worker-gpu"} <= set(services)
    queues = {s["command"][s["command"].index("--queues") + 1] for s in services.values() if "worker" in s["command"]}
    env = services["api"]["environment"]
    routed = set(json.loads(env["CADENZA_QUEUES"]).values())
    assert queues == routed  # every routed queue has a worker, and no worker waits on a queue nothing uses


@pytest.mark.parametrize("name", ["api", "worker-cpu", "worker-gpu"])
def test_compose_commands_and_settings_are_accepted(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = _services()[name]
    _accepted(service["command"])
    for key in [k for k in os.environ if k.startswith("CADENZA_")]:
        monkeypatch.delenv(key)
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = load_settings()
    assert settings.executor == "celery" and settings.database_url.startswith("postgresql")
    command = service["command"]
    if "--device" in command:
        settings = load_settings(device=command[command.index("--device") + 1])
        assert settings.device.startswith(("cpu", "cuda"))


def test_the_image_recipe_command_is_accepted() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    _accepted(json.loads(cmd[4:]))
    assert "torch==$TORCH_VERSION" in dockerfile and ".[distributed]" in dockerfile


def test_the_celery_executor_refuses_sqlite_and_a_missing_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    for key in [k for k in os.environ if k.startswith("CADENZA_")]:
        monkeypatch.delenv(key)
    with pytest.raises(ValidationError, match="needs broker_url"):
        load_settings(executor="celery", database_url="postgresql+psycopg://u@h/db")
    with pytest.raises(ValidationError, match="SQLite is refused"):
        load_settings(executor="celery", broker_url="redis://127.0.0.1:6379/0", database_url="sqlite:///x.db")
    settings = load_settings(executor="celery", broker_url="redis://h:6379/0", database_url="postgresql://u@h/d")
    assert settings.queues == {}
