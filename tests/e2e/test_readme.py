"""The README's quick start runs as written against a live server: every shell command of its
"Quick start" section (``make serve`` aside: the test starts the server the same way, on a free port,
with the built-in defaults), in order, in a fresh folder, stopping at the first failing command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import start_server  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start_commands() -> str:
    """The ```sh blocks of the Quick start section (before its "Optional extras"), without `make serve`."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0].split("### Optional extras", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    lines = [line for block in blocks for line in block.splitlines() if not line.startswith("make serve")]
    return "\n".join(lines) + "\n"


def test_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    script = quick_start_commands()
    assert "curl -fsS" in script and "127.0.0.1:8000" in script and "demo-song" in script
    server = start_server(tmp_path, embedded_defaults=True)
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)  # the commands call .venv/bin/cadenza
    try:
        done = subprocess.run(
            ["bash", "-e", "-c", script.replace("http://127.0.0.1:8000", server.base_url)],
            cwd=work,
            env={**server.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=280,
        )
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:], server.logs()[-3000:])
    finally:
        assert server.stop() == 0
    names = sorted(p.name for p in work.iterdir())
    groove = [n for n in names if re.fullmatch(r"j-dilla_89bpm_4bars_s42_[0-9a-f]{8}\.(mid|wav)", n)]
    assert len(groove) == 2, names  # the MIDI and its preview, under descriptive names
    stems = [n for n in names if re.fullmatch(r"separation_(drums|harmonic)_[0-9a-f]{8}\.wav", n)]
    assert len(stems) == 2, names
    assert sf.info(str(work / "song.wav")).duration > 5
    assert (work / "grooves" / "j-dilla_89bpm_4bars_s42.mid").stat().st_size > 0
    assert '"type": "status"' in done.stdout or '"status"' in done.stdout  # the events were printed
