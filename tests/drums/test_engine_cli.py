"""``cadenza drums``: runs the engine without a server and prints the output paths."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import pytest
import typer
from typer.testing import CliRunner

from cadenza.engines.drums import cli


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("drums")(cli.run_command)
    app.command("unused")(lambda: None)  # two commands: Typer keeps the sub-command name
    return app


def test_cli_generates_files(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "groove"
    args = ["drums", "--style", "metro_boomin", "--bars", "2", "--tempo", "140", "-t", "6/8", "--seed", "4"]
    result = CliRunner().invoke(app, [*args, "--pattern-type", "chorus", "-f", "wav", "--out", str(out)])
    assert result.exit_code == 0, result.output
    stem = "metro-boomin_140bpm_2bars_s4"
    for name in (f"{stem}.mid", f"{stem}_pattern.json", f"{stem}.wav"):
        assert str(out / name) in result.output
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.mid", f"{stem}.wav", f"{stem}_pattern.json"]
    assert "Metro Boomin" in result.output and "seed 4" in result.output
    document = json.loads((out / f"{stem}_pattern.json").read_text())
    assert document["time_signature"] == [6, 8] and document["pattern_type"] == "chorus" and document["seed"] == 4
    assert sum(msg.time for msg in mido.MidiFile(out / f"{stem}.mid").tracks[0]) == 2 * 1440


def test_cli_never_overwrites_without_force(app: typer.Typer, tmp_path: Path) -> None:
    """Regression: a second run into the same folder silently replaced the first groove."""
    runner = CliRunner()
    args = ["drums", "--style", "J Dilla", "--bars", "1", "--seed", "9", "--out", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    (tmp_path / "j-dilla_89bpm_1bars_s9.mid").write_bytes(b"my edited groove")
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--force" in again.output
    assert (tmp_path / "j-dilla_89bpm_1bars_s9.mid").read_bytes() == b"my edited groove"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "j-dilla_89bpm_1bars_s9.mid",
        "j-dilla_89bpm_1bars_s9_pattern.json",
    ]
    other_seed = runner.invoke(app, [*args[:-4], "--seed", "10", "--out", str(tmp_path)])
    assert other_seed.exit_code == 0  # a different groove gets a different name
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0 and (tmp_path / "j-dilla_89bpm_1bars_s9.mid").read_bytes() != b"my edited groove"


def test_cli_rejects_bad_input_without_files(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    bad_style = runner.invoke(app, ["drums", "--style", "Nobody", "--out", str(tmp_path / "a")])
    assert bad_style.exit_code == 2 and "valid styles" in bad_style.output and "J Dilla" in bad_style.output
    bad_meter = runner.invoke(app, ["drums", "-t", "4-4", "--out", str(tmp_path / "b")])
    assert bad_meter.exit_code == 2 and "4/4" in bad_meter.output
    bad_bars = runner.invoke(app, ["drums", "--bars", "40", "--out", str(tmp_path / "c")])
    assert bad_bars.exit_code == 2 and "bars" in bad_bars.output
    assert not list(tmp_path.iterdir())


def test_cli_lists_styles(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["drums", "--list-styles"])
    assert result.exit_code == 0
    for name in ("J Dilla", "Metro Boomin", "Questlove", "Sly Dunbar"):
        assert name in result.output


def test_train_and_eval_commands_are_exported() -> None:
    from cadenza.engines.base import resolve
    from cadenza.engines.drums import ENGINE

    declared = {(c.group, c.name): resolve(c.target) for c in ENGINE.commands}
    assert set(declared) == {("", "drums"), ("train", "drums"), ("eval", "drums")}
    assert all(callable(function) for function in declared.values())
    assert declared[("", "drums")] is cli.run_command


def test_cli_reference_sets_tempo_and_reports_closeness(app: typer.Typer, tmp_path: Path) -> None:
    from cadenza.engines.drums.engine import example_reference

    reference = example_reference(tmp_path)
    out = tmp_path / "ref"
    args = ["drums", "--style", "questlove", "--bars", "2", "--seed", "2", "--reference", str(reference)]
    result = CliRunner().invoke(app, [*args, "--reference-mode", "vary", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "at 96 BPM in 4/4" in result.output and "feel vs the reference (vary)" in result.output
    document = json.loads(next(out.glob("*_pattern.json")).read_text())
    assert document["reference"]["mode"] == "vary" and document["tempo_bpm"] == 96.0
    piano = tmp_path / "not-drums.mid"
    piano.write_bytes(b"MThd garbage")
    bad = CliRunner().invoke(app, ["drums", "--reference", str(piano), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "reference_midi cannot be read as MIDI" in bad.output
    clash = CliRunner().invoke(app, ["drums", "--reference", str(reference), "-t", "3/4", "--out", str(tmp_path / "y")])
    assert clash.exit_code == 2 and "reference_midi is in 4/4" in clash.output
