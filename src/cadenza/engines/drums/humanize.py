"""Style humanization of arranged hits: swing, micro-timing calibrated on data, ghost notes, dynamics.

* Swing is MPC swing (Roger Linn's Akai MPC60 / Linn 9000 definition): the second 16th of each
  8th-note pair is placed at ``swing_percent`` of the 8th-note duration, i.e. delayed by
  ``(swing_percent − 50) / 50`` of a 16th (50 % = straight, 66 % ≈ triplet feel).
* Micro-timing, per instrument, relative to the swung grid. The model decides *which* hits are early or
  late: its offsets are standardised per instrument within the groove (z-scores, shrunk towards the
  GMD genres' measured mean and spread with the weight of ``PRIOR_HITS`` hits, clipped to ±``Z_LIMIT``).
  The style decides *how much*: an instrument the style declares in ``microtiming_ms`` gets exactly its
  ``mean_ms + std_ms · z``; any other gets the GMD genres' measured feel (``gmd_feel.json``: mean and
  within-groove spread in ms) scaled by ``model_timing_scale``. So a style asking for a tight pocket gets
  one, and a loose style is as loose as the data's drummers, not as loose as the model happens to sample.
  Ghost notes, roll hits and hits a rule added have no model offset, and an instrument whose model offsets
  do not vary has nothing to standardise: their z is drawn from a standard normal.
* Ghost notes: low-velocity snare hits on empty off-beat 16ths, with the style's probability
  (not in fill bars).
* Dynamics: normal velocity noise with the style's std (MIDI units), then floors: no hit below
  ``velocity_floor`` (ghosts included), per-instrument minimums ``velocity_min`` (crash), and
  ``downbeat_kick_min`` for a kick on a bar's first step.

All randomness comes from the ``numpy.random.Generator`` passed in (PCG64 seeded from the request
seed), so the same hits + seed give the same result. With ``enabled=False`` hits stay on the grid
(only structural roll subdivisions keep their placement) with the arranged velocities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cadenza.engines.drums.arrange import KICK, SNARE, Hit, Meter
from cadenza.engines.drums.feel import InstrumentFeel
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


PRIOR_HITS = 1.0  # weight (in hits) of the data's mean and spread when standardising a groove's model offsets
Z_LIMIT = 2.5  # standardised offsets are clipped to ±2.5 spreads (no wild outliers from few hits)
DEFAULT_SPREAD_STEPS = 0.1  # prior spread (16th steps) for an instrument without data


def model_z_scores(hits: list[Hit], feel: Mapping[str, InstrumentFeel] | None, rng: np.random.Generator) -> list[float]:
    """Per hit, its standardised model offset within its instrument (see the module docstring)."""
    z = rng.standard_normal(len(hits)).tolist()  # ghosts and rolls keep these
    by_instrument: dict[int, list[int]] = {}
    for index, hit in enumerate(hits):
        if hit.timed and not hit.ghost and not hit.roll:
            by_instrument.setdefault(hit.instrument, []).append(index)
    for instrument, indices in by_instrument.items():
        prior = (feel or {}).get(DRUM_CLASSES[instrument])
        prior_mean = prior.offset_mean_steps if prior else 0.0
        prior_std = prior.offset_std_steps if prior and prior.offset_std_steps > 0 else DEFAULT_SPREAD_STEPS
        offsets = np.asarray([hits[i].model_offset for i in indices], dtype=np.float64)
        n = offsets.size
        if n < 2 or offsets.std() < 1e-4:  # no timing to standardise (one hit, or all on one spot): keep the draws
            continue
        mean = (offsets.sum() + PRIOR_HITS * prior_mean) / (n + PRIOR_HITS)
        std = math.sqrt((np.square(offsets - mean).sum() + PRIOR_HITS * prior_std**2) / (n + PRIOR_HITS))
        for i, value in zip(indices, np.clip((offsets - mean) / std, -Z_LIMIT, Z_LIMIT), strict=True):
            z[i] = float(value)
    return z


def timing_targets(
    humanization: Humanization, feel: Mapping[str, InstrumentFeel] | None
) -> dict[str, tuple[float, float] | None]:
    """Per instrument, the (mean_ms, std_ms) its hits get; None = scale the model's own offsets (no data)."""
    targets: dict[str, tuple[float, float] | None] = {}
    scale = humanization.model_timing_scale
    for name in DRUM_CLASSES:
        declared = humanization.microtiming_ms.get(name)
        if declared is not None:
            targets[name] = (declared.mean_ms, declared.std_ms)
        elif feel is not None and name in feel:
            targets[name] = (scale * feel[name].offset_mean_ms, scale * feel[name].offset_std_ms)
        else:
            targets[name] = None
    return targets


def voiced_velocity(hit: Hit, humanization: Humanization, noise: float) -> int:
    """MIDI velocity of ``hit`` after the style's noise and floors (see the module docstring)."""
    if hit.ghost:
        velocity = round(hit.velocity * 127.0)
    else:
        velocity = round(hit.velocity * 127.0 + humanization.velocity_std * noise)
        velocity = max(velocity, humanization.velocity_min.get(DRUM_CLASSES[hit.instrument], 1))
        if hit.instrument == KICK and hit.step == 0 and hit.grid_offset == 0.0:
            velocity = max(velocity, humanization.downbeat_kick_min)
    return int(np.clip(velocity, humanization.velocity_floor, 127))


def humanize(
    hits: list[Hit],
    humanization: Humanization,
    meter: Meter,
    tempo_bpm: float,
    fill_bars: list[bool],
    rng: np.random.Generator,
    enabled: bool = True,
    feel: Mapping[str, InstrumentFeel] | None = None,
) -> list[PlacedHit]:
    """Place and voice every hit (see the module docstring). Returns hits in the input order plus ghosts.

    ``feel``: the style's GMD genre feel (:func:`feel.conditioning_feel`); without it, instruments the style
    does not declare keep ``model_timing_scale`` × the model's offsets.
    """
    if not enabled:
        return [
            PlacedHit(
                h.bar, h.step, h.instrument, h.pitch, to_midi_velocity(h.velocity), h.grid_offset, h.ghost, h.roll
            )
            for h in hits
        ]
    step_ms = step_duration_ms(tempo_bpm)
    hits = add_ghost_notes(hits, humanization, meter, fill_bars, rng)
    z_scores = model_z_scores(hits, feel, rng)
    targets = timing_targets(humanization, feel)
    velocity_noise = rng.standard_normal(len(hits))
    placed = []
    for hit, z, noise in zip(hits, z_scores, velocity_noise, strict=True):
        offset = hit.grid_offset
        if hit.grid_offset == 0.0:
            offset += swing_offset_steps(hit.step, humanization.swing_percent)
        target = targets[DRUM_CLASSES[hit.instrument]]
        if target is None:
            offset += hit.model_offset * humanization.model_timing_scale
        else:
            offset += (target[0] + target[1] * z) / step_ms
        placed.append(
            PlacedHit(
                hit.bar,
                hit.step,
                hit.instrument,
                hit.pitch,
                voiced_velocity(hit, humanization, float(noise)),
                offset,
                hit.ghost,
                hit.roll,
            )
        )
    return placed
