"""The first-run path of the README: `make serve` in a fresh folder with the embedded defaults."""

from __future__ import annotations

import io

import httpx
import mido

from .conftest import start_server


def test_fresh_folder_with_embedded_defaults_serves_a_drums_job(tmp_path):
    server = start_server(tmp_path, embedded_defaults=True)
    try:
        response = httpx.post(
            f"{server.base_url}/v1/drums",
            json={"producer_style": "J Dilla", "bars": 4, "tempo": 90},
            headers={"Prefer": "wait=30"},
            timeout=40,
        )
        assert response.status_code == 200, (response.text, server.logs())
        job = response.json()
        assert job["status"] == "completed", job
        data_dir = tmp_path / "xdg" / "cadenza"  # the platform's user data folder
        assert (data_dir / "cadenza.db").is_file()
        assert [p.name for p in (data_dir / "files" / job["id"]).glob("attempt-*/groove.mid")] == ["groove.mid"]
        assert not (tmp_path / "var").exists()

        midi = httpx.get(f"{server.base_url}/v1/jobs/{job['id']}/files/groove.mid", timeout=10)
        assert midi.status_code == 200
        assert midi.headers["content-type"] == "audio/midi"
        parsed = mido.MidiFile(file=io.BytesIO(midi.content))
        assert parsed.ticks_per_beat == 480
        assert abs(parsed.length - 4 * 4 * 60 / 90) < 1e-3  # tempo is stored in whole microseconds per beat
    finally:
        assert server.stop() == 0
