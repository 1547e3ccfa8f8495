"""MIDI writing (music/midi.py) and SoundFont preview rendering (music/synth.py)."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import symusic

from cadenza.music.midi import DrumNote, drum_midi_bytes, ticks_per_bar, write_drum_midi
from cadenza.music.synth import PEAK_TARGET, default_soundfont, render_midi, resolve_soundfont, write_preview


def groove_notes(bars: int, bar_ticks: int) -> list[DrumNote]:
    notes = []
    for bar in range(bars):
        base = bar * bar_ticks
        notes += [DrumNote(base, 36, 110), DrumNote(base + bar_ticks // 2, 38, 100)]
        notes += [DrumNote(base + i * 240, 42, 70 + (i % 2) * 20) for i in range(bar_ticks // 240)]
    return notes


@pytest.mark.parametrize(("numerator", "denominator", "clocks"), [(4, 4, 24), (3, 4, 24), (6, 8, 36), (7, 8, 12)])
def test_midi_header_meter_and_length(numerator: int, denominator: int, clocks: int) -> None:
    bar_ticks = ticks_per_bar(numerator, denominator)
    assert bar_ticks == numerator * 480 * 4 // denominator
    data = drum_midi_bytes(
        groove_notes(3, bar_ticks),
        tempo_bpm=93.0,
        numerator=numerator,
        denominator=denominator,
        total_ticks=3 * bar_ticks,
        track_name="Test drums",
    )
    midi = mido.MidiFile(file=io.BytesIO(data))
    assert midi.ticks_per_beat == 480 and len(midi.tracks) == 1
    track = midi.tracks[0]
    metas = {msg.type: msg for msg in track if msg.is_meta}
    assert metas["track_name"].name == "Test drums"
    assert mido.tempo2bpm(metas["set_tempo"].tempo) == pytest.approx(93.0, abs=1e-3)
    ts = metas["time_signature"]
    assert (ts.numerator, ts.denominator, ts.clocks_per_click) == (numerator, denominator, clocks)
    assert sum(msg.time for msg in track) == 3 * bar_ticks  # end-of-track exactly at the last bar line
    assert track[-1].type == "end_of_track"
    notes = [msg for msg in track if msg.type in ("note_on", "note_off")]
    assert notes and all(msg.channel == 9 for msg in notes)

    score = symusic.Score.from_midi(data)
    assert score.ticks_per_quarter == 480 and score.tracks[0].is_drum
    assert len(score.tracks[0].notes) == len(groove_notes(3, bar_ticks))
    assert score.end() <= 3 * bar_ticks


def test_clamping_dedup_and_note_lengths() -> None:
    total = 1920
    notes = [
        DrumNote(-25, 36, 90),  # humanized before 0: clamped to 0
        DrumNote(0, 36, 120),  # same tick and pitch: the louder one stays
        DrumNote(1900, 42, 80),  # note off clipped at the end
        DrumNote(2050, 38, 70),  # past the end: clamped to the last tick
        DrumNote(600, 42, 60),
        DrumNote(630, 42, 61),  # next hit sooner than a 32nd: the first note ends there
    ]
    score = symusic.Score.from_midi(
        drum_midi_bytes(notes, tempo_bpm=120, numerator=4, denominator=4, total_ticks=total)
    )
    got = sorted((n.time, n.pitch, n.velocity, n.duration) for n in score.tracks[0].notes)
    assert got == [(0, 36, 120, 60), (600, 42, 60, 30), (630, 42, 61, 60), (1900, 42, 80, 20), (1919, 38, 70, 1)]


def test_bytes_deterministic_and_order_independent(tmp_path: Path) -> None:
    notes = groove_notes(2, 1920)
    kwargs = {"tempo_bpm": 101.5, "numerator": 4, "denominator": 4, "total_ticks": 3840}
    first = drum_midi_bytes(notes, **kwargs)
    assert drum_midi_bytes(list(reversed(notes)), **kwargs) == first
    assert write_drum_midi(tmp_path / "a.mid", notes, **kwargs).read_bytes() == first
    assert drum_midi_bytes(notes[1:], **kwargs) != first


@pytest.mark.parametrize(
    ("note", "total", "match"),
    [
        (DrumNote(0, 128, 100), 10, "pitch"),
        (DrumNote(0, 36, 0), 10, "velocity"),
        (DrumNote(0, 36, 1), 0, "total_ticks"),
    ],
)
def test_bad_notes_raise(note: DrumNote, total: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        drum_midi_bytes([note], tempo_bpm=120, numerator=4, denominator=4, total_ticks=total)


@pytest.fixture(scope="module")
def preview() -> np.ndarray:
    midi = drum_midi_bytes(groove_notes(2, 1920), tempo_bpm=120, numerator=4, denominator=4, total_ticks=3840)
    return render_midi(midi)


def test_render_shape_level_and_determinism(preview: np.ndarray) -> None:
    assert preview.dtype == np.float32 and preview.ndim == 2 and preview.shape[0] == 2
    assert preview.shape[1] >= 4 * 44100  # 2 bars at 120 BPM = 4 s (plus release tail)
    assert np.max(np.abs(preview)) == pytest.approx(PEAK_TARGET, rel=1e-4)
    midi = drum_midi_bytes(groove_notes(2, 1920), tempo_bpm=120, numerator=4, denominator=4, total_ticks=3840)
    assert np.array_equal(render_midi(midi), preview)


@pytest.mark.parametrize("output_format", ["wav", "flac", "mp3"])
def test_preview_files(tmp_path: Path, preview: np.ndarray, output_format: str) -> None:
    path = write_preview(tmp_path / f"groove.{output_format}", preview, 44100, output_format)
    info = sf.info(str(path))
    assert info.samplerate == 44100 and info.channels == 2
    assert info.format == {"wav": "WAV", "flac": "FLAC", "mp3": "MP3"}[output_format]
    audio, _ = sf.read(str(path), dtype="float32")
    assert abs(len(audio) - preview.shape[1]) < 44100 * 0.1
    assert np.sqrt(np.mean(audio**2)) > 1e-3  # not silent
    again = write_preview(tmp_path / f"again.{output_format}", preview, 44100, output_format)
    assert again.read_bytes() == path.read_bytes()


def test_soundfont_resolution(tmp_path: Path) -> None:
    assert resolve_soundfont(None) == default_soundfont() and default_soundfont().name == "TimGM6mb.sf2"
    with pytest.raises(FileNotFoundError):
        resolve_soundfont(tmp_path / "missing.sf2")
    not_sf = tmp_path / "font.txt"
    not_sf.write_text("x")
    with pytest.raises(ValueError, match="sf2"):
        resolve_soundfont(not_sf)
    garbage = tmp_path / "garbage.sf2"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00WAVE" + bytes(100))
    with pytest.raises(ValueError, match="not a SoundFont"):
        resolve_soundfont(garbage)
    with pytest.raises(ValueError, match="preview format"):
        write_preview(tmp_path / "x.ogg", np.zeros((2, 10), np.float32), 44100, "ogg")
