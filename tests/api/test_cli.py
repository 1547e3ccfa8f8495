"""CLI: invalid configuration stops start-up with exit 2 naming the key; config show; keys; jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cadenza.cli.main import app

runner = CliRunner()


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "CADENZA_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CADENZA_FILES_DIR": str(tmp_path / "files"),
        **extra,
    }


@pytest.fixture(autouse=True)
def _restore_config_env() -> None:
    yield
    os.environ.pop("CADENZA_CONFIG", None)  # load_settings(config_file=...) exports it


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["serve", "--port", "70000"], {}, ["port", "70000"]),
        (["serve"], {"CADENZA_WORKERS": "lots"}, ["workers", "lots"]),
        (["serve"], {"CADENZA_LOG_FORMAT": "xml"}, ["log_format", "xml", "json"]),
        (["serve"], {"CADENZA_WORKRES": "2"}, ["CADENZA_WORKRES"]),
        (["config", "show"], {"CADENZA_SHUTDOWN_TIMEOUT_S": "-1"}, ["shutdown_timeout_s", "-1"]),
        (["serve"], {"CADENZA_RATE_LIMIT": "lots"}, ["rate_limit", "lots"]),
    ],
)
def test_invalid_configuration_exits_2(tmp_path: Path, args: list[str], env: dict, names: list[str]) -> None:
    result = runner.invoke(app, args, env=env_for(tmp_path, **env))
    assert result.exit_code == 2, result.output
    for name in names:
        assert name in result.output
    assert "Traceback" not in result.output


def test_unknown_yaml_key_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "cadenza.yaml"
    config.write_text("prot: 8080\nworkers: 1\n")
    result = runner.invoke(app, ["config", "show", "--config", str(config)], env=env_for(tmp_path))
    assert result.exit_code == 2
    assert "prot" in result.output and "8080" in result.output
    missing = runner.invoke(app, ["serve", "--config", str(tmp_path / "nope.yaml")], env=env_for(tmp_path))
    assert missing.exit_code == 2 and "nope.yaml" in missing.output


def test_serve_subprocess_with_bad_env_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADENZA_")}
    env.update(env_for(tmp_path, CADENZA_PORT="not-a-port"))
    cadenza = Path(sys.executable).with_name("cadenza")
    proc = subprocess.run([str(cadenza), "serve"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "port" in proc.stderr and "not-a-port" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["config", "show", "--format", "json"], env=env_for(tmp_path, CADENZA_ADMIN_KEY="super-secret")
    )
    assert result.exit_code == 0, result.output
    assert "super-secret" not in result.output
    assert '"admin_key": "**********"' in result.output
    yaml_out = runner.invoke(app, ["config", "show"], env=env_for(tmp_path, CADENZA_PORT="9001"))
    assert "port: 9001" in yaml_out.output


def test_keys_and_jobs_commands(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    created = runner.invoke(app, ["keys", "create", "ci-bot"], env=env)
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    listed = runner.invoke(app, ["keys", "list"], env=env)
    assert "ci-bot" in listed.output and secret not in listed.output
    from cadenza.jobs import JobService
    from cadenza.settings import load_settings

    os.environ.update(env)
    try:
        service = JobService(load_settings())
        key = service.keys.verify(secret)
        assert key is not None
        revoked = runner.invoke(app, ["keys", "revoke", key.id], env=env)
        assert revoked.exit_code == 0, revoked.output
        assert service.keys.verify(secret) is None
        job, _ = service.submit("drums", {"producer_style": "J Dilla", "bars": 1, "tempo": 90})
    finally:
        for name in env:
            os.environ.pop(name, None)
    listed_jobs = runner.invoke(app, ["jobs", "list"], env=env)
    assert listed_jobs.exit_code == 0 and str(job.id)[:8] in listed_jobs.output
    shown = runner.invoke(app, ["jobs", "show", str(job.id)], env=env)
    assert shown.exit_code == 0 and "J Dilla" in shown.output
    cancelled = runner.invoke(app, ["jobs", "cancel", str(job.id)], env=env)
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output
    assert runner.invoke(app, ["jobs", "show", "nonsense"], env=env).exit_code == 2
    for command in ("show", "cancel"):
        unknown = runner.invoke(app, ["jobs", command, "00000000-0000-4000-8000-000000000000"], env=env)
        assert unknown.exit_code == 1 and "No job 00000000-0000-4000-8000-000000000000" in unknown.output
    assert runner.invoke(app, ["jobs", "prune"], env=env).exit_code == 0


def test_engine_commands_are_registered_lazily(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from cadenza.cli.main import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().endswith("NO-TORCH"), proc.stdout + proc.stderr
    for name in ("drums", "separate", "train", "eval", "serve", "worker", "jobs", "keys", "models", "config"):
        assert name in proc.stdout


def test_engine_run_command_through_the_main_cli(tmp_path: Path) -> None:
    result = runner.invoke(app, ["drums", "--bars", "1", "--seed", "3", "--out", str(tmp_path)], env=env_for(tmp_path))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "j-dilla_89bpm_1bars_s3.mid").stat().st_size > 0
    bad = runner.invoke(app, ["drums", "--bars", "99", "--out", str(tmp_path)], env=env_for(tmp_path))
    assert bad.exit_code == 2
    assert runner.invoke(app, ["eval", "--help"]).exit_code == 0


def test_models_list_shows_presence_and_the_files_a_missing_model_needs(tmp_path: Path) -> None:
    import json

    env = env_for(tmp_path, CADENZA_MODELS_DIR=str(tmp_path / "models"))
    listed = runner.invoke(app, ["models", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    models = {m["name"]: m for m in json.loads(listed.output)}
    assert models["groove-transformer"]["weights_present"] and models["groove-transformer"]["size_bytes"] > 0
    assert models["hpss"]["weights_present"]
    assert not models["htdemucs"]["weights_present"]
    assert any(f.startswith("demucs/htdemucs.yaml") for f in models["htdemucs"]["missing_files"])

    table = runner.invoke(app, ["models", "list"], env=env)
    assert table.exit_code == 0, table.output
    assert "groove-transformer" in table.output
    assert "htdemucs: add demucs/htdemucs.yaml" in table.output.replace("\n", " ")


def test_default_data_folder_is_found_from_any_folder_and_ids_are_never_cut(tmp_path: Path) -> None:
    """Regression: `cadenza jobs list` run in another folder silently created a new ./var/cadenza.db,
    and ids were cut to 8 characters at 80 columns."""
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "COLUMNS": "80"}
    for key in [k for k in env if k.startswith("CADENZA_")]:
        del env[key]
    cadenza = str(Path(sys.executable).with_name("cadenza"))
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    first = subprocess.run([cadenza, "jobs", "list"], cwd=here, env=env, capture_output=True, text=True, timeout=120)
    database = tmp_path / "xdg" / "cadenza" / "cadenza.db"
    assert first.returncode == 0 and f"Created a new, empty database at {database}" in first.stderr, first.stderr
    assert not (here / "var").exists()
    from cadenza.jobs import JobService
    from cadenza.settings import Settings

    settings = Settings(data_dir=tmp_path / "xdg" / "cadenza")
    assert settings.database_url == f"sqlite:///{database}" and settings.files_dir == database.parent / "files"
    job, _ = JobService(settings).submit("drums", {"producer_style": "J Dilla", "bars": 1, "tempo": 90})
    second = subprocess.run(
        [cadenza, "jobs", "list"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0 and "Created" not in second.stderr
    assert str(job.id) in second.stdout  # the same installation, and the whole id on one line
    assert not (elsewhere / "var").exists()
