"""GMD loading: meter grids, MIDI → grid quantisation, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import symusic

from cadenza.engines.drums.data import (
    N_PATTERNS,
    decode_patterns,
    encode_patterns,
    iter_windows,
    load_records,
    meter_grid,
    metric_positions,
    midi_to_grid,
    offset_bins,
    read_info,
    velocity_bins,
)
from cadenza.music.drum_map import DRUM_CLASSES

GMD = Path(__file__).resolve().parents[2] / "../shared/data/groove"
HIHAT, OPEN_HIHAT, KICK, SNARE = (DRUM_CLASSES.index(n) for n in ("closed_hihat", "open_hihat", "kick", "snare"))


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (4, 4, (16, 4)),
        (3, 4, (12, 4)),
        (6, 8, (12, 6)),
        (7, 8, (14, 2)),
        (5, 8, (10, 2)),
        (12, 8, (24, 6)),
        (2, 2, (16, 8)),
        (7, 16, (7, 1)),
        (5, 4, (20, 4)),
    ],
)
def test_meter_grid(numerator: int, denominator: int, expected: tuple[int, int]) -> None:
    assert meter_grid(numerator, denominator) == expected


@pytest.mark.parametrize(("numerator", "denominator"), [(4, 3), (0, 4), (4, 32), (33, 4)])
def test_meter_grid_rejects_bad_signatures(numerator: int, denominator: int) -> None:
    with pytest.raises(ValueError):
        meter_grid(numerator, denominator)


def test_metric_positions_for_six_eight() -> None:
    pos = metric_positions(24, 12, 6)
    assert pos["pos_in_beat"].tolist()[:13] == [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0]
    assert pos["beat_in_bar"].tolist()[:13] == [0] * 6 + [1] * 6 + [0]
    assert pos["bar_start"].nonzero()[0].tolist() == [0, 12]
    assert set(pos["beats_per_bar"].tolist()) == {2}


def _write_midi(path: Path, notes: list[tuple[int, int, int]], numerator: int = 4, denominator: int = 4) -> None:
    score = symusic.Score(480)
    score.time_signatures.append(symusic.TimeSignature(0, numerator, denominator))
    score.tempos.append(symusic.Tempo(0, 96.0))
    track = symusic.Track("drums", program=0, is_drum=True)
    for time, pitch, velocity in notes:
        track.notes.append(symusic.Note(time, 30, pitch, velocity))
    score.tracks.append(track)
    score.dump_midi(str(path))


def test_midi_to_grid_quantises_maps_edges_and_keeps_loudest(tmp_path: Path) -> None:
    step = 120  # 480 PPQ / 4
    notes = [
        (0, 36, 100),  # kick on step 0
        (step + 30, 22, 64),  # closed hi-hat edge, 0.25 step late on step 1
        (2 * step - 40, 26, 127),  # open hi-hat edge, 1/3 step early on step 2
        (3 * step + 10, 38, 40),  # two snares in step 3: the louder (second) one wins
        (3 * step - 20, 38, 90),
        (14 * 12 * 10, 70, 50),  # maracas (GM extra, mapped to hi-hat) in 3/4 bar 2 -> grid padded to whole bars
    ]
    path = tmp_path / "g.mid"
    _write_midi(path, notes, 3, 4)
    grid, numerator, denominator, tempo = midi_to_grid(path)
    assert (numerator, denominator) == (3, 4)
    assert tempo == pytest.approx(96.0, rel=1e-4)
    assert grid.n_steps == 24 and grid.n_steps % 12 == 0
    assert grid.hits[0, KICK] and grid.velocity[0, KICK] == pytest.approx(100 / 127)
    assert grid.hits[1, HIHAT] and grid.offset[1, HIHAT] == pytest.approx(0.25)
    assert grid.hits[2, OPEN_HIHAT] and grid.offset[2, OPEN_HIHAT] == pytest.approx(-1 / 3, abs=1e-6)
    assert grid.velocity[3, SNARE] == pytest.approx(90 / 127)
    assert grid.offset[3, SNARE] == pytest.approx(-1 / 6, abs=1e-6)
    assert grid.hits[14, HIHAT]
    assert grid.hits.sum() == 5
    assert not grid.velocity[~grid.hits].any() and not grid.offset[~grid.hits].any()


def test_midi_to_grid_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file")
    with pytest.raises(ValueError):
        midi_to_grid(bad)


def test_load_records_split_and_ranges() -> None:
    records = load_records(GMD, ["train", "test"], limit=5)
    assert [r.split for r in records].count("train") == 5 and [r.split for r in records].count("test") == 5
    for rec in records:
        g = rec.grid
        assert g.hits.shape == g.velocity.shape == g.offset.shape == (g.n_steps, 9)
        assert g.n_steps % rec.steps_per_bar == 0
        assert g.velocity.dtype == np.float32 and g.offset.dtype == np.float32
        assert g.velocity[g.hits].min() > 0 and g.velocity.max() <= 1
        assert g.offset.min() >= -0.5 and g.offset.max() < 0.5
    with pytest.raises(ValueError):
        load_records(GMD, ["holdout"])
    with pytest.raises(FileNotFoundError):
        load_records(GMD / "nope")


def test_hihat_edge_pitches_are_kept() -> None:
    """GMD writes pitches 22 and 26 (hi-hat edges); every such hit must land on its hi-hat class."""
    checked = 0
    for rec in load_records(GMD, ["test"], limit=12):
        row = next(r for r in read_info(GMD) if r["id"] == rec.id)
        score = symusic.Score(str(GMD / row["midi_filename"]))
        step_ticks = score.ticks_per_quarter / 4
        for note in score.tracks[0].notes:
            if note.pitch in (22, 26):
                step = int(np.floor(note.time / step_ticks + 0.5))
                assert rec.grid.hits[step, HIHAT if note.pitch == 22 else OPEN_HIHAT]
                checked += 1
    assert checked > 100


def test_pattern_and_bin_codecs() -> None:
    rng = np.random.default_rng(0)
    hits = rng.random((50, 9)) < 0.3
    patterns = encode_patterns(hits)
    assert patterns.max() < N_PATTERNS
    assert (decode_patterns(patterns) == hits).all()
    assert velocity_bins(np.array([0.0, 0.124, 0.125, 1.0])).tolist() == [0, 0, 1, 7]
    assert offset_bins(np.array([-0.5, -0.39, 0.0, 0.4999])).tolist() == [0, 0, 4, 8]


def test_iter_windows_whole_bars() -> None:
    records = load_records(GMD, ["validation"], limit=3)
    windows = list(iter_windows(records, 2))
    assert windows
    for rec, start, grid in windows:
        assert start % rec.steps_per_bar == 0 and grid.n_steps == 2 * rec.steps_per_bar and grid.hits.any()
