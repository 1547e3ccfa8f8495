"""Humanization: MPC swing, per-instrument micro-timing, ghost notes, velocity variation, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.engines.drums.arrange import CLOSED_HH, CRASH, KICK, RIDE, SNARE, Hit, Meter
from cadenza.engines.drums.feel import conditioning_feel
from cadenza.engines.drums.humanize import (
    add_ghost_notes,
    humanize,
    step_duration_ms,
    swing_offset_steps,
    to_midi_velocity,
)
from cadenza.engines.drums.styles import Humanization, Timing
from cadenza.music.drum_map import GM_PITCH

METER = Meter.of(4, 4)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def hat_bars(n_bars: int, velocity: float = 0.6, model_offset: float = 0.0) -> list[Hit]:
    return [
        Hit(bar, step, CLOSED_HH, GM_PITCH[CLOSED_HH], velocity, model_offset=model_offset)
        for bar in range(n_bars)
        for step in range(16)
    ]


def test_mpc_swing_definition() -> None:
    # Second 16th of an 8th pair at swing% of the 8th: position 2 × swing/100 steps from the pair start.
    for swing in (50, 54, 58, 62, 66, 75):
        assert swing_offset_steps(1, swing) == pytest.approx(2 * swing / 100 - 1)
        assert swing_offset_steps(0, swing) == 0.0 and swing_offset_steps(6, swing) == 0.0
    assert swing_offset_steps(3, 50) == 0.0
    assert swing_offset_steps(5, 66) == pytest.approx(0.32)
    assert step_duration_ms(120) == pytest.approx(125.0)


def test_disabled_keeps_grid_and_model_velocities() -> None:
    hits = hat_bars(2, velocity=0.5, model_offset=0.3)
    hits.append(Hit(1, 12, CLOSED_HH, 42, 0.7, grid_offset=0.5, roll=True))
    style = Humanization(swing_percent=66, velocity_std=20, ghost_note_probability=1.0)
    placed = humanize(hits, style, METER, 90.0, [False, False], rng(), enabled=False)
    assert len(placed) == len(hits)  # no ghost notes
    assert [p.offset_steps for p in placed] == [0.0] * 32 + [0.5]  # roll subdivision kept, nothing else moved
    assert [p.velocity for p in placed] == [to_midi_velocity(h.velocity) for h in hits]


def test_swing_and_microtiming_statistics() -> None:
    style = Humanization(swing_percent=60, microtiming_ms={"closed_hihat": Timing(mean_ms=10.0, std_ms=5.0)})
    tempo = 100.0
    step_ms = step_duration_ms(tempo)
    placed = humanize(hat_bars(64), style, METER, tempo, [False] * 64, rng())
    offsets_ms = {
        parity: np.array([p.offset_steps * step_ms for p in placed if p.step % 2 == parity]) for parity in (0, 1)
    }
    assert offsets_ms[0].mean() == pytest.approx(10.0, abs=1.0)
    assert offsets_ms[0].std() == pytest.approx(5.0, abs=0.7)
    assert offsets_ms[1].mean() - offsets_ms[0].mean() == pytest.approx(0.2 * step_ms, abs=1.5)


def test_model_timing_scale_and_rolls_not_swung() -> None:
    hits = hat_bars(1, model_offset=0.25) + [Hit(0, 13, CLOSED_HH, 42, 0.6, grid_offset=0.5, roll=True)]
    style = Humanization(swing_percent=66, model_timing_scale=0.5)
    placed = humanize(hits, style, METER, 90.0, [False], rng())
    assert placed[0].offset_steps == pytest.approx(0.125)
    assert placed[1].offset_steps == pytest.approx(0.125 + 0.32)
    assert placed[-1].offset_steps == pytest.approx(0.5)  # structural, not swung, model offset 0


def test_ghost_notes_on_empty_offbeat_sixteenths_only() -> None:
    snare = [Hit(bar, step, SNARE, 38, 0.9) for bar in range(4) for step in (4, 12, 7)]
    style = Humanization(ghost_note_probability=1.0, ghost_velocity_range=(20, 40))
    with_ghosts = add_ghost_notes(snare, style, METER, [False, False, False, True], rng())
    ghosts = [h for h in with_ghosts if h.ghost]
    assert {(h.bar, h.step) for h in ghosts} == {(bar, step) for bar in range(3) for step in (1, 3, 5, 9, 11, 13, 15)}
    placed = humanize(snare, style, METER, 90.0, [False, False, False, True], rng())
    ghost_velocities = [p.velocity for p in placed if p.ghost]
    assert len(ghost_velocities) == 21 and min(ghost_velocities) >= 20 and max(ghost_velocities) <= 40
    assert all(p.pitch == 38 and p.instrument == SNARE for p in placed if p.ghost)
    none = humanize(snare, Humanization(ghost_note_probability=0.0), METER, 90.0, [False] * 4, rng())
    assert not any(p.ghost for p in none)


def test_ghost_probability_is_respected() -> None:
    style = Humanization(ghost_note_probability=0.3)
    ghosts = [h for h in add_ghost_notes([], style, METER, [False] * 100, rng()) if h.ghost]
    assert len(ghosts) / 800 == pytest.approx(0.3, abs=0.05)


def test_velocity_variation_and_clipping() -> None:
    loud = [Hit(bar, 2, KICK, 36, 1.0) for bar in range(200)]
    placed = humanize(loud, Humanization(velocity_std=25), METER, 90.0, [False] * 200, rng())
    velocities = np.array([p.velocity for p in placed])
    assert velocities.max() == 127 and velocities.min() < 110
    steady = humanize(loud, Humanization(velocity_std=0), METER, 90.0, [False] * 200, rng())
    assert {p.velocity for p in steady} == {127}


def test_velocity_floor_and_musical_minimums() -> None:
    """Regression: velocities went down to 1 (13 of 68 J Dilla notes under 20, crashes under 10)."""
    quiet = [
        Hit(bar, step, instrument, GM_PITCH[instrument], 0.01)
        for bar in range(50)
        for step, instrument in ((0, KICK), (2, KICK), (4, SNARE), (0, CRASH))
    ]
    quiet.append(Hit(0, 3, SNARE, 38, 0.05, ghost=True))
    style = Humanization(velocity_std=25, velocity_floor=22)
    placed = humanize(quiet, style, METER, 90.0, [False] * 50, rng())
    assert min(p.velocity for p in placed) == 22  # ghosts included
    assert min(p.velocity for p in placed if p.instrument == CRASH) >= 72
    assert min(p.velocity for p in placed if p.instrument == KICK and p.step == 0) >= 80
    assert min(p.velocity for p in placed if p.instrument == KICK and p.step == 2) < 80  # only the downbeat
    lower = Humanization(velocity_floor=10, velocity_min={"crash": 40}, downbeat_kick_min=50)
    placed = humanize(quiet, lower, METER, 90.0, [False] * 50, rng())
    assert min(p.velocity for p in placed) == 10
    assert min(p.velocity for p in placed if p.instrument == CRASH) == 40


def test_declared_timing_wins_over_the_model() -> None:
    """Regression: Questlove's tight pocket measured as loose as J Dilla (the model's timing drowned the style's).

    Hits with loose, early model offsets (as the model samples them) come out with exactly the declared mean
    and spread; the model still decides which hits are early: its order is kept.
    """
    generator = rng(3)
    model_offsets = generator.normal(-0.2, 0.15, 16 * 16)
    hits = [
        Hit(bar, step, CLOSED_HH, 42, 0.6, model_offset=float(model_offsets[bar * 16 + step]))
        for bar in range(16)
        for step in range(16)
    ]
    tight = Humanization(swing_percent=50, microtiming_ms={"closed_hihat": Timing(mean_ms=2.0, std_ms=3.0)})
    placed = humanize(hits, tight, METER, 90.0, [False] * 16, rng())
    offsets_ms = np.array([p.offset_steps for p in placed]) * step_duration_ms(90.0)
    assert offsets_ms.mean() == pytest.approx(2.0, abs=0.3)
    assert offsets_ms.std() == pytest.approx(3.0, abs=0.3)
    assert np.corrcoef(offsets_ms, model_offsets)[0, 1] > 0.99  # the model's feel, rescaled


def test_undeclared_instruments_get_the_data_feel() -> None:
    """An instrument the style does not declare gets the GMD genres' measured mean and spread, scaled."""
    feel = conditioning_feel({"hiphop": 0.7, "soul": 0.3})
    ride = feel["ride"]
    generator = rng(4)
    hits = [
        Hit(bar, step, RIDE, 51, 0.6, model_offset=float(generator.normal(0.1, 0.3)))
        for bar in range(16)
        for step in range(0, 16, 2)
    ]
    for scale in (1.0, 0.5):
        placed = humanize(hits, Humanization(model_timing_scale=scale), METER, 90.0, [False] * 16, rng(), feel=feel)
        offsets_ms = np.array([p.offset_steps for p in placed]) * step_duration_ms(90.0)
        assert offsets_ms.mean() == pytest.approx(scale * ride.offset_mean_ms, abs=1.5)
        assert offsets_ms.std() == pytest.approx(scale * ride.offset_std_ms, rel=0.1)


def test_deterministic_for_a_seed() -> None:
    style = Humanization(
        swing_percent=57,
        ghost_note_probability=0.2,
        velocity_std=8,
        microtiming_ms={"closed_hihat": Timing(mean_ms=5, std_ms=9)},
    )
    first = humanize(hat_bars(4), style, METER, 90.0, [False] * 4, rng(11))
    assert humanize(hat_bars(4), style, METER, 90.0, [False] * 4, rng(11)) == first
    assert humanize(hat_bars(4), style, METER, 90.0, [False] * 4, rng(12)) != first
