"""``cadenza separate``: the engine without a server, options mapped onto the request."""

from __future__ import annotations

import soundfile as sf
import typer
from typer.testing import CliRunner

from cadenza.engines.separation import cli


def test_cli_writes_stems_with_margin(write_song, tmp_path, monkeypatch):
    monkeypatch.setenv("CADENZA_MODELS_DIR", str(tmp_path / "no-models"))
    app = typer.Typer()
    app.command("separate")(cli.run_command)
    app.command("unused")(lambda: None)  # two commands: Typer keeps the sub-command name
    song = write_song("song.wav", seconds=2.0)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["separate", str(song), "-m", "hpss", "--margin", "2", "--seed", "3", "-f", "flac", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (out / "song").iterdir())
    assert names == ["drums.flac", "harmonic.flac", "residual.flac"]
    assert sf.info(str(out / "song" / "drums.flac")).frames == 2 * 44100
    # Regression: a second run replaced the stems silently; now it needs --force.
    (out / "song" / "drums.flac").write_bytes(b"edited")
    args = ["separate", str(song), "-m", "hpss", "-f", "flac", "-o", str(out)]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "--force" in again.output
    assert (out / "song" / "drums.flac").read_bytes() == b"edited"
    assert sorted(p.name for p in (out / "song").iterdir()) == names  # no temp folder left
    assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0
    assert sf.info(str(out / "song" / "drums.flac")).frames == 2 * 44100
