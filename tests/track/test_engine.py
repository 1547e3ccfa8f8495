"""The track engine end to end with the real drums and melody models and the SoundFont: exact length,
loudness and true peak measured independently, stems that sum to the mix, the multitrack MIDI, determinism,
seamless loops and lyrics."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from cadenza.engines.base import RunContext
from cadenza.engines.track import ENGINE

CACHE: dict[str, Any] = {}


def make(tmp_path: Path, name: str = "job", **fields: Any) -> tuple[dict, Path, list[float]]:
    workdir = tmp_path / name
    workdir.mkdir(parents=True)
    params, _ = ENGINE.validate({"seed": 1, **fields}, None)
    seen: list[float] = []
    ctx = RunContext(workdir=workdir, models_dir=tmp_path / "models", cache=CACHE)
    result = ENGINE.resolve("run")(params, lambda percent, stage="": seen.append(percent), ctx)
    assert {o.name for o in result.outputs} == {p.name for p in workdir.iterdir()}
    return result.metadata, workdir, seen


def true_peak_dbtp(audio: np.ndarray) -> float:
    return 20 * math.log10(float(np.abs(resample_poly(audio.astype(np.float64), 4, 1, axis=-1)).max()))


def test_a_prompt_becomes_a_mastered_song_with_stems_and_a_multitrack_midi(tmp_path: Path) -> None:
    meta, workdir, seen = make(tmp_path, prompt="boom bap, 92 bpm, C minor, piano and upright bass, 20 seconds")
    mix, rate = sf.read(workdir / "track.wav", always_2d=True, dtype="float32")
    assert rate == 44100 and mix.shape == (20 * 44100, 2)
    assert abs(pyloudnorm.Meter(rate).integrated_loudness(mix.astype(np.float64)) + 14) <= 0.5
    assert true_peak_dbtp(mix.T) <= -1.0
    stems = {p.stem.removeprefix("stem-"): sf.read(p, dtype="float32")[0] for p in workdir.glob("stem-*.wav")}
    assert set(stems) == {"drums", "bass", "harmony", "lead"}
    assert np.max(np.abs(np.sum(list(stems.values()), axis=0, dtype=np.float64) - mix)) < 1e-5
    assert all(np.sqrt(np.mean(s**2)) > 1e-3 for s in stems.values())  # every stem sounds
    mp3, _ = sf.read(workdir / "track.mp3", dtype="float32")
    assert abs(len(mp3) - len(mix)) < 4 * 1152  # MP3 frames pad the ends
    midi = mido.MidiFile(workdir / "arrangement.mid")
    names = [next(m.name for m in t if m.type == "track_name") for t in midi.tracks]
    assert names[1:] == [
        "drums (drums)",
        "bass (Acoustic Bass)",
        "harmony (Acoustic Grand Piano)",
        "lead (Brass Section)",
    ]
    conductor = midi.tracks[0]
    assert [round(mido.tempo2bpm(m.tempo), 3) for m in conductor if m.type == "set_tempo"] == [92]
    assert [m.key for m in conductor if m.type == "key_signature"] == ["Cm"]
    assert all(m.channel == 9 for m in midi.tracks[1] if m.type == "note_on")
    assert midi.length == pytest.approx(meta["bars"] * 4 * 60 / 92, abs=1e-3)
    doc = json.loads((workdir / "track.json").read_text())
    assert (doc["tempo_bpm"], doc["key"], doc["time_signature"]) == (92, "C minor", [4, 4])
    assert doc["measured"]["key_from_midi"] == "C minor"
    assert abs(doc["measured"]["tempo_bpm_from_audio"] - 92) <= 0.02 * 92
    assert doc["interpretation"]["tempo_bpm"]["words"] == "92 bpm"
    assert [m.text for m in conductor if m.type == "marker"] == [s["name"] for s in doc["sections"]]
    assert len(doc["chords"]) == doc["bars"] and sum(s["bars"] for s in doc["sections"]) == doc["bars"]
    assert seen == sorted(seen) and seen[-1] == 100.0 and len(seen) >= 8  # progress per stage, in order


def test_the_same_request_and_seed_give_the_same_bytes(tmp_path: Path) -> None:
    fields = {"prompt": "reggae, 76 bpm, G major, organ, 8 seconds", "formats": ["wav", "flac", "mp3"]}

    def digests(name: str, **extra: Any) -> dict[str, str]:
        _, workdir, _ = make(tmp_path, name, **fields, **extra)
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in workdir.iterdir()}

    first = digests("a")
    assert first == digests("b")
    other = digests("c", seed=2)
    assert other["track.wav"] != first["track.wav"] and other["arrangement.mid"] != first["arrangement.mid"]


def test_a_loop_has_no_seam_no_fade_and_whole_bars(tmp_path: Path) -> None:
    meta, workdir, _ = make(tmp_path, prompt="deep house, 124 bpm, A minor, loopable, 8 seconds", stems=False)
    mix, rate = sf.read(workdir / "track.wav", always_2d=True, dtype="float64")
    bars = meta["bars"]
    assert meta["loop"] and len(mix) == round(bars * 4 * 60 / 124 * rate)
    jumps = np.abs(np.diff(mix, axis=0)).max(axis=1)
    seam = np.abs(mix[0] - mix[-1]).max()
    assert seam <= np.quantile(jumps, 0.999)  # the wrap from the end to the start is an ordinary step
    second = rate
    edges = [np.sqrt(np.mean(mix[:second] ** 2)), np.sqrt(np.mean(mix[-second:] ** 2))]
    middle = np.sqrt(np.mean(mix**2))
    assert min(edges) > 0.5 * middle  # no fade-in or fade-out at either end
    # the reverb tail of the end is wrapped to the start: the first 50 ms are not silent before any hit
    assert np.sqrt(np.mean(mix[: rate // 20] ** 2)) > 1e-3


@pytest.mark.parametrize(
    ("prompt", "meter"), [("jazz waltz, 3/4, 150 bpm, 8 s", [3, 4]), ("folk jig in 6/8, 8 s", [6, 8])]
)
def test_other_meters_render(tmp_path: Path, prompt: str, meter: list[int]) -> None:
    meta, workdir, _ = make(tmp_path, prompt=prompt, stems=False, formats=["wav"])
    assert meta["time_signature"] == meter
    midi = mido.MidiFile(workdir / "arrangement.mid")
    signature = next(m for m in midi.tracks[0] if m.type == "time_signature")
    assert [signature.numerator, signature.denominator] == meter
    assert sf.info(str(workdir / "track.wav")).frames == 8 * 44100


def test_lyrics_are_sung_one_syllable_per_lead_note(tmp_path: Path) -> None:
    lyrics = "Morning comes, the city hums a melody"
    meta, workdir, _ = make(tmp_path, prompt="pop ballad in G major, 80 bpm, 20 s", lyrics=lyrics, stems=False)
    lead = next(t for t in mido.MidiFile(workdir / "arrangement.mid").tracks if t.name.startswith("lead"))
    program = next(m.program for m in lead if m.type == "program_change")
    assert program == 53  # General MIDI Voice Oohs
    sung, now, onsets = [], 0, set()
    for message in lead:
        now += message.time
        if message.type == "lyrics":
            sung.append((now, message.text))
        elif message.type == "note_on":
            onsets.add(now)
    assert [t for t, _ in sung] == sorted(t for t, _ in sung) and all(t in onsets for t, _ in sung)
    assert "".join(text for _, text in sung).split() == lyrics.split()
