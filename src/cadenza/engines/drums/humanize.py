"""Style humanization of arranged hits: swing, per-instrument micro-timing, ghost notes, velocity variation.

* Swing is MPC swing (Roger Linn's Akai MPC60 / Linn 9000 definition): the second 16th of each
  8th-note pair is placed at ``swing_percent`` of the 8th-note duration, i.e. delayed by
  ``(swing_percent − 50) / 50`` of a 16th (50 % = straight, 66 % ≈ triplet feel).
* Micro-timing: per instrument a mean lateness and a jitter (normal, std) in milliseconds, added to
  the model's own offsets (which come from real drummers in the Groove MIDI Dataset), scaled by the
  style's ``model_timing_scale``.
* Ghost notes: low-velocity snare hits on empty off-beat 16ths, with the style's probability
  (not in fill bars).
* Velocity variation: normal noise with the style's std, in MIDI velocity units, clipped to 1–127.

All randomness comes from the ``numpy.random.Generator`` passed in (PCG64 seeded from the request
seed), so the same hits + seed give the same result. With ``enabled=False`` hits stay on the grid
(only structural roll subdivisions keep their placement) with the arranged velocities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cadenza.engines.drums.arrange import SNARE, Hit, Meter
from cadenza.engines.drums.styles import Humanization
from cadenza.music.drum_map import DRUM_CLASSES, GM_PITCH


@dataclass(frozen=True)
class PlacedHit:
    """A final hit: ``offset_steps`` is its placement relative to its 16th step, in 16th steps."""

    bar: int
    step: int
    instrument: int
    pitch: int
    velocity: int
    offset_steps: float
    ghost: bool = False
    roll: bool = False


def swing_offset_steps(step: int, swing_percent: float) -> float:
    """MPC swing delay of a 16th step, in 16th steps: ``(swing − 50) / 50`` on odd steps, 0 on even ones."""
    return (swing_percent - 50.0) / 50.0 if step % 2 else 0.0


def step_duration_ms(tempo_bpm: float) -> float:
    """Duration of one 16th note in ms at ``tempo_bpm`` quarter notes per minute."""
    return 60_000.0 / tempo_bpm / 4.0


def to_midi_velocity(velocity: float) -> int:
    """[0, 1] velocity → MIDI velocity 1–127."""
    return int(np.clip(round(velocity * 127.0), 1, 127))


def add_ghost_notes(
    hits: list[Hit], humanization: Humanization, meter: Meter, fill_bars: list[bool], rng: np.random.Generator
) -> list[Hit]:
    """Hits plus ghost snare notes on empty off-beat 16ths (odd steps) of non-fill bars."""
    probability = humanization.ghost_note_probability
    if probability <= 0:
        return list(hits)
    snare_steps = {(h.bar, h.step) for h in hits if h.instrument == SNARE}
    ghosts = []
    low, high = humanization.ghost_velocity_range
    for bar, is_fill in enumerate(fill_bars):
        if is_fill:
            continue
        for step in range(1, meter.steps_per_bar, 2):
            if (bar, step) in snare_steps or rng.random() >= probability:
                continue
            velocity = int(rng.integers(low, high + 1)) / 127.0
            ghosts.append(Hit(bar, step, SNARE, GM_PITCH[SNARE], velocity, ghost=True))
    return sorted(hits + ghosts, key=lambda h: (h.bar, h.step, h.grid_offset, h.instrument))


def humanize(
    hits: list[Hit],
    humanization: Humanization,
    meter: Meter,
    tempo_bpm: float,
    fill_bars: list[bool],
    rng: np.random.Generator,
    enabled: bool = True,
) -> list[PlacedHit]:
    """Place and voice every hit (see the module docstring). Returns hits in the input order plus ghosts."""
    if not enabled:
        return [
            PlacedHit(
                h.bar, h.step, h.instrument, h.pitch, to_midi_velocity(h.velocity), h.grid_offset, h.ghost, h.roll
            )
            for h in hits
        ]
    step_ms = step_duration_ms(tempo_bpm)
    timing = humanization.microtiming_ms
    placed = []
    for hit in add_ghost_notes(hits, humanization, meter, fill_bars, rng):
        offset = hit.grid_offset + hit.model_offset * humanization.model_timing_scale
        if hit.grid_offset == 0.0:
            offset += swing_offset_steps(hit.step, humanization.swing_percent)
        instrument_timing = timing.get(DRUM_CLASSES[hit.instrument])
        jitter = rng.standard_normal(2)
        if instrument_timing is not None:
            offset += (instrument_timing.mean_ms + instrument_timing.std_ms * jitter[0]) / step_ms
        if hit.ghost:
            velocity = round(hit.velocity * 127.0)
        else:
            velocity = round(hit.velocity * 127.0 + humanization.velocity_std * jitter[1])
        placed.append(
            PlacedHit(
                hit.bar,
                hit.step,
                hit.instrument,
                hit.pitch,
                int(np.clip(velocity, 1, 127)),
                offset,
                hit.ghost,
                hit.roll,
            )
        )
    return placed
