"""Arrangement on real Groove MIDI Dataset grids: meters and accents, style rules, pattern types (sections)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cadenza.engines.drums.arrange import (
    CLOSED_HH,
    CRASH,
    KICK,
    OPEN_HH,
    RIDE,
    SECTIONS,
    SIDE_STICK_PITCH,
    SNARE,
    Hit,
    Meter,
    arrange,
    fill_plan,
)
from cadenza.engines.drums.data import Grid, midi_to_grid
from cadenza.engines.drums.styles import Style, load_catalog

GROOVE = Path(__file__).resolve().parents[2] / "../shared/data/groove"
HIPHOP_44 = "drummer3/session2/25_hiphop_92_beat_4-4.mid"
ROCK_68 = "drummer6/session1/1_rock_70_beat_6-8.mid"
ROCK_34 = "drummer1/session2/6_rock_102_beat_3-4.mid"


def gmd_grid(name: str, n_bars: int, steps_per_bar: int) -> Grid:
    grid, *_ = midi_to_grid(GROOVE / name)
    n_steps = n_bars * steps_per_bar
    assert grid.n_steps >= n_steps + steps_per_bar
    start = steps_per_bar  # skip the count-in bar
    return grid.slice(start, start + n_steps)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def plain(**rules: object) -> Style:
    return Style(
        name="Plain", description="test", preferred_tempo_range=(60, 200), conditioning={"rock": 1.0}, rules=rules
    )


def at(hits: list[Hit], instrument: int, bar: int | None = None) -> list[int]:
    return sorted(h.step for h in hits if h.instrument == instrument and (bar is None or h.bar == bar))


@pytest.mark.parametrize(
    ("ts", "steps", "beat", "beats", "backbeats", "half"),
    [
        ((4, 4), 16, 4, [0, 4, 8, 12], [4, 12], 8),
        ((3, 4), 12, 4, [0, 4, 8], [4, 8], 8),
        ((6, 8), 12, 6, [0, 6], [6], 6),
        ((7, 8), 14, 2, [0, 2, 4, 6, 8, 10, 12], [2, 6, 10], 8),
        ((2, 2), 16, 8, [0, 8], [8], 8),
    ],
)
def test_meter_grid(
    ts: tuple[int, int], steps: int, beat: int, beats: list[int], backbeats: list[int], half: int
) -> None:
    meter = Meter.of(*ts)
    assert (meter.steps_per_bar, meter.steps_per_beat, meter.beat_steps) == (steps, beat, beats)
    assert meter.backbeat_steps == backbeats and meter.half_time_step == half


def test_accents_follow_the_meter() -> None:
    six_eight = Meter.of(6, 8)
    accents = [six_eight.accent(step) for step in range(12)]
    assert accents[0] > accents[6] > max(accents[s] for s in range(12) if s not in (0, 6))  # 1 and 4 of six eighths
    three_four = Meter.of(3, 4)
    accents = [three_four.accent(step) for step in range(12)]
    assert accents[0] > accents[4] == accents[8] > max(accents[s] for s in range(12) if s % 4)


@pytest.mark.parametrize(("name", "ts", "strong"), [(ROCK_68, (6, 8), [0, 6]), (ROCK_34, (3, 4), [0])])
def test_real_grids_in_three_and_six_get_meter_accents(name: str, ts: tuple[int, int], strong: list[int]) -> None:
    meter = Meter.of(*ts)
    grid = gmd_grid(name, 8, meter.steps_per_bar)
    flat = Grid(grid.hits.copy(), np.where(grid.hits, 0.6, 0.0).astype(np.float32), grid.offset.copy())
    hits = arrange(flat, plain(), meter, "verse", [False] * 8, rng())
    assert max(h.bar for h in hits) == 7 and max(h.step for h in hits) < meter.steps_per_bar
    mean = {s: np.mean([h.velocity for h in hits if h.step == s]) for s in {h.step for h in hits}}
    weak = [v for s, v in mean.items() if s not in strong]
    for s in strong:
        assert mean[s] > max(weak)
    if ts == (6, 8):
        assert mean[0] > mean[6]


@pytest.mark.parametrize(
    ("pattern_type", "bars", "expected"),
    [
        ("verse", 16, [7, 15]),
        ("chorus", 8, [3, 7]),
        ("bridge", 6, [3]),
        ("intro", 4, [3]),
        ("outro", 5, [4]),
        ("verse", 1, []),
        ("intro", 1, [0]),
    ],
)
def test_fill_plan(pattern_type: str, bars: int, expected: list[int]) -> None:
    plan = fill_plan(pattern_type, bars)
    assert len(plan) == bars and [i for i, fill in enumerate(plan) if fill] == expected


def test_half_time_snare_and_fill_region() -> None:
    meter = Meter.of(4, 4)
    grid = gmd_grid(HIPHOP_44, 4, 16)
    fills = [False, False, False, True]
    hits = arrange(grid, plain(half_time_snare=True), meter, "chorus", fills, rng())
    for bar in range(3):
        loud = [h.step for h in hits if h.bar == bar and h.instrument == SNARE and h.velocity > 0.4]
        assert loud == [8]
    # the fill bar's second half (steps 56..63 of the grid) keeps every hit of the model
    original = {(int(s) + 8, int(c)) for s, c in zip(*np.nonzero(grid.hits[56:64]), strict=True)}
    arranged = {(h.step, h.instrument) for h in hits if h.bar == 3 and h.step >= 8}
    assert original and original <= arranged


@pytest.mark.parametrize(("ts", "backbeats"), [((4, 4), [4, 12]), ((3, 4), [4, 8]), ((6, 8), [6])])
def test_backbeat_rule_keeps_strokes_on_backbeats(ts: tuple[int, int], backbeats: list[int]) -> None:
    meter = Meter.of(*ts)
    source = ROCK_68 if ts == (6, 8) else ROCK_34 if ts == (3, 4) else HIPHOP_44
    grid = gmd_grid(source, 4, meter.steps_per_bar)
    grid.hits[:, SNARE] = True  # a snare stroke on every step: the rule must sort them out
    grid.velocity[:, SNARE] = 0.9
    hits = arrange(grid, plain(backbeat=True), meter, "chorus", [False, False, False, True], rng())
    for bar in range(3):
        strokes = [h.step for h in hits if h.bar == bar and h.instrument == SNARE and h.velocity > 0.5]
        assert strokes == backbeats
        ghosts = [h for h in hits if h.bar == bar and h.instrument == SNARE and h.step not in backbeats]
        assert ghosts and all(h.velocity < 0.4 for h in ghosts)  # demoted to ghost level, not deleted
    fill = [h for h in hits if h.bar == 3 and h.instrument == SNARE and h.step >= meter.steps_per_bar // 2]
    assert len(fill) == meter.steps_per_bar // 2 and min(h.velocity for h in fill) > 0.5  # the fill is untouched


def test_four_on_the_floor_one_drop_cross_stick() -> None:
    meter = Meter.of(4, 4)
    grid = gmd_grid(HIPHOP_44, 4, 16)
    house = arrange(grid, plain(four_on_the_floor=True), meter, "chorus", [False] * 4, rng())
    for bar in range(4):
        assert at(house, KICK, bar) == [0, 4, 8, 12]
    reggae = arrange(grid, plain(one_drop=True, cross_stick=True), meter, "verse", [False] * 4, rng())
    for bar in range(4):
        assert at(reggae, KICK, bar) == [8] and at(reggae, SNARE, bar) == [8]
    assert {h.pitch for h in reggae if h.instrument == SNARE} == {SIDE_STICK_PITCH}


def test_hihat_grid_ride_and_kick_density() -> None:
    meter = Meter.of(4, 4)
    grid = gmd_grid(HIPHOP_44, 4, 16)
    sixteenths = arrange(grid, plain(hihat_grid=16), meter, "chorus", [False] * 4, rng())
    for bar in range(4):
        hats = set(at(sixteenths, CLOSED_HH, bar)) | set(at(sixteenths, OPEN_HH, bar))
        assert hats == set(range(16))
    eighths = arrange(grid, plain(hihat_grid=8), meter, "chorus", [False] * 4, rng())
    assert all(step % 2 == 0 for step in at(eighths, CLOSED_HH))
    ride = arrange(grid, plain(ride_instead_of_hihat=True), meter, "verse", [False] * 4, rng())
    assert not at(ride, CLOSED_HH) and len(at(ride, RIDE)) >= len(
        at(arrange(grid, plain(), meter, "verse", [False] * 4, rng()), CLOSED_HH)
    )
    sparse = arrange(grid, plain(kick_density=0.0), meter, "chorus", [False] * 4, rng())
    assert set(at(sparse, KICK)) <= {0}


@pytest.mark.parametrize(("kind", "offsets"), [("thirty_second", {0.0, 0.5}), ("triplet", {0.0, 1 / 3, 2 / 3})])
def test_hihat_rolls(kind: str, offsets: set[float]) -> None:
    meter = Meter.of(4, 4)
    grid = gmd_grid(HIPHOP_44, 4, 16)
    weights = {"sixteenth": 0.0, "thirty_second": 0.0, "triplet": 0.0, kind: 1.0}
    hits = arrange(grid, plain(hihat_rolls={"probability": 1.0, **weights}), meter, "verse", [False] * 4, rng())
    for bar in range(4):
        roll = [h for h in hits if h.bar == bar and h.roll]
        assert len(roll) == (8 if kind == "thirty_second" else 6)
        assert {round(h.grid_offset, 6) for h in roll} == {round(o, 6) for o in offsets}
        assert min(h.step for h in roll) >= 8  # second half of the bar
        assert roll[-1].velocity > roll[0].velocity  # crescendo
    assert not [
        h for h in arrange(grid, plain(hihat_rolls={"probability": 1.0}), meter, "verse", [True] * 4, rng()) if h.roll
    ]


def test_sections_change_density_crashes_and_dynamics() -> None:
    meter = Meter.of(4, 4)
    grid = gmd_grid(HIPHOP_44, 8, 16)
    grid.hits[:, CRASH] = False
    grid.velocity[:, CRASH] = 0.0
    style = load_catalog().get("Questlove")
    by_type = {t: arrange(grid, style, meter, t, [False] * 8, rng(3)) for t in SECTIONS}
    assert len(by_type["intro"]) < len(by_type["verse"]) < len(by_type["chorus"])
    crashes = {t: sorted(h.bar for h in hits if h.instrument == CRASH and h.step == 0) for t, hits in by_type.items()}
    assert crashes == {"intro": [], "verse": [], "chorus": [0, 4], "bridge": [0], "outro": [0]}
    assert [h.step for h in by_type["chorus"] if h.instrument == OPEN_HH and h.bar == 1] == [14]
    assert not at(by_type["bridge"], CLOSED_HH) and at(by_type["bridge"], RIDE)
    outro = by_type["outro"]
    first, last = (np.mean([h.velocity for h in outro if h.bar == b and h.instrument == KICK]) for b in (0, 7))
    assert last < first


def test_grid_shape_mismatch_raises() -> None:
    grid = gmd_grid(HIPHOP_44, 2, 16)
    with pytest.raises(ValueError, match="does not match"):
        arrange(grid, plain(), Meter.of(3, 4), "verse", [False, False], rng())
    with pytest.raises(KeyError):
        arrange(grid, plain(), Meter.of(4, 4), "solo", [False, False], rng())
