"""Humanization: MPC swing, per-instrument micro-timing, ghost notes, velocity variation, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from cadenza.engines.drums.arrange import CLOSED_HH, KICK, SNARE, Hit, Meter
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
    loud = [Hit(bar, 0, KICK, 36, 1.0) for bar in range(200)]
    placed = humanize(loud, Humanization(velocity_std=25), METER, 90.0, [False] * 200, rng())
    velocities = np.array([p.velocity for p in placed])
    assert velocities.max() == 127 and velocities.min() < 110
    quiet = [Hit(bar, 0, KICK, 36, 0.01) for bar in range(200)]
    assert (
        min(p.velocity for p in humanize(quiet, Humanization(velocity_std=25), METER, 90.0, [False] * 200, rng())) == 1
    )
    steady = humanize(loud, Humanization(velocity_std=0), METER, 90.0, [False] * 200, rng())
    assert {p.velocity for p in steady} == {127}


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
