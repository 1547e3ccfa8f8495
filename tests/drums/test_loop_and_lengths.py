"""Loop-safe grooves (no timing jump at the seam when looped) and note lengths per instrument."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import symusic

from cadenza.engines.base import RunContext
from cadenza.engines.drums import ENGINE
from cadenza.engines.drums.arrange import CLOSED_HH, CRASH, KICK, OPEN_HH, Meter
from cadenza.engines.drums.humanize import PlacedHit
from cadenza.engines.drums.pattern import pattern_document
from cadenza.engines.drums.schema import DrumsRequest

CACHE: dict[str, Any] = {}
PPQ, BAR = 480, 1920


def groove(tmp_path: Path, **fields: Any) -> tuple[dict, symusic.Score]:
    workdir = tmp_path / "job"
    workdir.mkdir(parents=True)
    ctx = RunContext(workdir=workdir, models_dir=tmp_path / "models", cache=CACHE)
    params = DrumsRequest.model_validate({"producer_style": "J Dilla", "bars": 4, "tempo": 90, **fields})
    ENGINE.resolve("run")(params, lambda percent, stage="": None, ctx)
    return json.loads((workdir / "pattern.json").read_text()), symusic.Score(str(workdir / "groove.mid"))


def looped(score: symusic.Score, length_ticks: int, times: int) -> list[tuple[int, int]]:
    """(tick, pitch) of every note of ``score`` played ``times`` times end to end, as a looper would."""
    return sorted(
        (copy * length_ticks + note.time, note.pitch)
        for copy in range(times)
        for track in score.tracks
        for note in track.notes
    )


def test_a_groove_looped_4_times_has_no_timing_jump_at_the_seams(tmp_path: Path) -> None:
    """Regression: the first downbeat kick was pinned to 0 ms while later downbeats sat 25–51 ms early.

    Looped 4×, every downbeat kick (seams included) must sit where the groove's timing puts a downbeat, and
    every hit of the loop must sound once per copy at its musical time (grid + offset) modulo the loop.
    """
    found_early_downbeat = False
    for seed in range(6):
        document, score = groove(tmp_path / str(seed), seed=seed)
        total = document["loop"]["length_ticks"]
        assert total == 4 * BAR and score.end() <= total
        notes = looped(score, total, 4)
        assert len(notes) == 4 * sum(len(t.notes) for t in score.tracks)  # nothing lost or doubled at a seam
        # the musical time of each hit, modulo the loop, is where the file has it
        for hit in document["hits"]:
            intended = hit["bar"] * BAR + hit["step"] * 120 + hit["offset_ticks"]
            assert hit["tick"] == intended % total
        kick_offsets = {
            hit["bar"]: hit["offset_ticks"] for hit in document["hits"] if hit["pitch"] == 36 and hit["step"] == 0
        }
        found_early_downbeat |= kick_offsets.get(0, 0) < 0
        # every downbeat kick of every copy, the first ones at the seams included, sits at its own offset
        # (k·loop + bar·BAR + offset; bar 0's early kick sounds just before each seam), never on the bar line
        downbeats = {t for t, p in notes if p == 36 and min(t % BAR, BAR - t % BAR) < 240}
        expected = {k * total + bar * BAR + offset for k in range(5) for bar, offset in kick_offsets.items()}
        assert {t for t in expected if 0 <= t < 4 * total} <= downbeats
    # J Dilla pushes the kick early (declared −14 ms): the first downbeat must be early too, not pinned to 0
    assert found_early_downbeat


def _hit(bar: int, step: int, instrument: int, pitch: int, offset: float = 0.0) -> PlacedHit:
    return PlacedHit(bar, step, instrument, pitch, 100, offset)


def test_early_first_hit_wraps_to_the_end_and_late_last_hit_to_the_start() -> None:
    hits = [_hit(0, 0, KICK, 36, -0.25), _hit(1, 15, CLOSED_HH, 42, 1.25), _hit(1, 4, KICK, 36)]
    document, notes = pattern_document(hits, header={}, meter=Meter.of(4, 4), tempo_bpm=120.0, total_ticks=2 * BAR)
    assert [n.tick for n in notes] == [2 * BAR - 30, 30, BAR + 480]
    assert [h["wrapped"] for h in document["hits"]] == [True, True, False]
    assert document["loop"] == {**document["loop"], "policy": "wrap", "length_ticks": 2 * BAR, "wrapped_hits": 2}
    assert document["hits"][0]["duration_ticks"] == 30  # cut at the end of the file
    assert document["hits"][0]["offset_ms"] == -31.25


def test_note_lengths_per_instrument() -> None:
    """Regression: every hit was a 32nd. Open hats ring until the next hi-hat, crashes long, closed hats short."""
    hits = [
        _hit(0, 0, KICK, 36),
        _hit(0, 0, CRASH, 49),
        _hit(0, 2, CLOSED_HH, 42),
        _hit(0, 6, OPEN_HH, 46),
        _hit(0, 10, CLOSED_HH, 42),
        _hit(1, 8, CRASH, 49),
        _hit(1, 12, OPEN_HH, 46),
    ]
    document, notes = pattern_document(hits, header={}, meter=Meter.of(4, 4), tempo_bpm=100.0, total_ticks=2 * BAR)
    lengths = [h["duration_ticks"] for h in document["hits"]]
    assert lengths == [120, BAR, 60, 4 * 120, 60, 8 * 120, 4 * 120]  # last open hat: to the end of the file
    score = symusic.Score.from_midi(_midi(notes))
    durations = sorted((n.time, n.pitch, n.duration) for n in score.tracks[0].notes)
    assert durations == sorted(
        (n.tick, n.pitch, min(length, 2 * BAR - n.tick)) for n, length in zip(notes, lengths, strict=True)
    )


def _midi(notes: list) -> bytes:
    from cadenza.music.midi import drum_midi_bytes

    return drum_midi_bytes(notes, tempo_bpm=100.0, numerator=4, denominator=4, total_ticks=2 * BAR)
