"""Grooves in the feel of a user's own drum MIDI: read a reference, extract its groove template, steer towards it.

A reference is a drum MIDI file the user played or programmed (General MIDI percussion on channel 10). Its
first ``MAX_REFERENCE_BARS`` bars become a **groove template** on the 16th grid (GrooVAE's representation,
``data.py``): per instrument and step of the bar, how often it is hit, its mean micro-timing and velocity,
plus the instrument's spread around those means; the file's tempo and meter are the job's defaults.

Generation follows it in two ways:

* **Density and placement**: each step's 512-way hit-pattern logits get a bias of
  ``strength · Σ_i hit_i · logit(p_i)``, ``p_i`` being the (smoothed) chance the reference hits instrument i
  on that step of the bar. Mode ``feel`` uses the reference's average bar with a moderate strength: new
  grooves with its density, its instruments and where it places them. Mode ``vary`` follows the reference
  bar by bar with a high strength: variations of the pattern itself; fill bars and the section (intro
  sparser, chorus denser) still change it.
* **Feel**: instead of the style's swing, micro-timing and dynamics, each hit gets the template's mean
  offset and velocity for its instrument and step (the instrument's mean where the reference has no hit
  there), plus the instrument's spread times the model's standardised offset, so the model still decides
  which hits push and which drag. Style rules (backbeat, hi-hat grid, …) are not applied: the reference
  defines the pattern vocabulary; the style still conditions the model.

The job's result reports the reference's feel statistics, the output's, and their distance
(:mod:`feel`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cadenza.engines.drums.arrange import Hit, Meter
from cadenza.engines.drums.data import N_PATTERNS, Grid, decode_patterns, score_to_grid
from cadenza.engines.drums.feel import FeelHit, groove_stats
from cadenza.engines.drums.humanize import PlacedHit, model_z_scores
from cadenza.engines.drums.styles import Humanization
from cadenza.music.drum_map import DRUM_CLASSES, N_CLASSES
from cadenza.music.midi_input import MidiLimits, MidiRejected, first_bars, read_midi

ReferenceMode = Literal["feel", "vary"]
MAX_REFERENCE_BARS = 16
MIN_TEMPO_BPM, MAX_TEMPO_BPM = 20.0, 400.0
#: Bias strength (log-odds multiplier) per mode, and its share in fill bars (the model plays the fill).
STRENGTH: dict[str, float] = {"feel": 1.0, "vary": 3.0}
FILL_SHARE = 0.25
SMOOTHING = 0.05  # added to hit chances before the log-odds (never certain, never impossible)
VARY_OWN_BAR = 0.8  # in ``vary``, a step's chance = 0.8 × this bar's hit + 0.2 × the average bar's
_BITS = decode_patterns(np.arange(N_PATTERNS)).astype(np.float32)  # (512, 9) hits of each joint pattern


class ReferenceError(ValueError):
    """The reference file cannot be used (not MIDI, no drum track, unsupported meter or tempo)."""


@dataclass(frozen=True)
class Reference:
    """A reference groove: ``grid`` (bars × steps_per_bar, 9) on the 16th grid, its meter and tempo."""

    grid: Grid
    numerator: int
    denominator: int
    tempo_bpm: float
    steps_per_bar: int
    n_bars: int

    @property
    def meter(self) -> Meter:
        return Meter.of(self.numerator, self.denominator)

    def bars(self) -> np.ndarray:
        """(n_bars, steps_per_bar, 9) bool hits."""
        return self.grid.hits.reshape(self.n_bars, self.steps_per_bar, N_CLASSES)

    def stats(self) -> dict[str, Any]:
        """:func:`feel.groove_stats` of the reference."""
        rows, cols = np.nonzero(self.grid.hits)
        hits = [
            FeelHit(
                int(r) // self.steps_per_bar,
                int(r) % self.steps_per_bar,
                int(c),
                float(self.grid.offset[r, c]),
                int(round(float(self.grid.velocity[r, c]) * 127)),
            )
            for r, c in zip(rows, cols, strict=True)
        ]
        return groove_stats(hits, n_bars=self.n_bars, steps_per_bar=self.steps_per_bar, tempo_bpm=self.tempo_bpm)


def read_reference(path: Path, limits: MidiLimits | None = None) -> Reference:
    """Read a drum MIDI file as a Reference (its first ``MAX_REFERENCE_BARS`` bars).

    The file goes through :func:`cadenza.music.midi_input.read_midi` (``limits``: size, tracks, events, notes,
    span, tempo values) and only its first bars are gridded, so memory and time follow what is kept.
    Raises ReferenceError saying what is wrong: a broken limit (named), not a Standard MIDI File, no notes on
    a drum track (channel 10) with a General MIDI percussion key, a time signature outside x/2, x/4, x/8, x/16 or a
    tempo outside 20–400 BPM.
    """
    try:
        score = read_midi(Path(path), "reference_midi", limits or MidiLimits())
        # Only the first bars are kept: the grid is allocated for them, never up to the file's last tick.
        score = first_bars(score, MAX_REFERENCE_BARS)
    except MidiRejected as exc:
        raise ReferenceError(str(exc)) from None
    try:
        grid, numerator, denominator, tempo_bpm = score_to_grid(score, drums_only=True)
    except ValueError as exc:
        if "no drum notes" in str(exc):
            raise ReferenceError(
                f"reference_midi has no drum notes in its first {MAX_REFERENCE_BARS} bars: it needs a drum track "
                "(MIDI channel 10) using General MIDI "
                "percussion keys (35–59, e.g. 36 kick, 38 snare, 42 closed hi-hat)"
            ) from None
        raise ReferenceError(f"reference_midi: {exc}") from None
    if not MIN_TEMPO_BPM <= tempo_bpm <= MAX_TEMPO_BPM:
        raise ReferenceError(f"reference_midi's tempo {tempo_bpm:g} BPM is outside 20–400 BPM")
    meter = Meter.of(numerator, denominator)
    n_bars = min(MAX_REFERENCE_BARS, grid.n_steps // meter.steps_per_bar)
    grid = grid.slice(0, n_bars * meter.steps_per_bar)
    if not grid.hits.any():
        raise ReferenceError("reference_midi has no drum hits in its first bars")
    return Reference(grid, numerator, denominator, float(tempo_bpm), meter.steps_per_bar, n_bars)


def hit_chances(reference: Reference, n_bars: int, mode: ReferenceMode) -> np.ndarray:
    """(n_bars × steps_per_bar, 9) chance that each instrument is hit on each step, from the reference."""
    bars = reference.bars().astype(np.float64)
    average = bars.mean(0)  # (steps_per_bar, 9)
    if mode == "vary":
        own = np.stack([bars[bar % reference.n_bars] for bar in range(n_bars)])
        chances = VARY_OWN_BAR * own + (1.0 - VARY_OWN_BAR) * average[None]
    else:
        chances = np.repeat(average[None], n_bars, axis=0)
    return chances.reshape(n_bars * reference.steps_per_bar, N_CLASSES)


def pattern_bias(reference: Reference, fill_bars: list[bool], mode: ReferenceMode) -> np.ndarray:
    """(n_steps, 512) float32 log-odds bias of each step's hit patterns towards the reference (module doc)."""
    n_bars = len(fill_bars)
    chances = hit_chances(reference, n_bars, mode)
    log_odds = np.log((chances + SMOOTHING) / (1.0 - chances + SMOOTHING))
    strength = np.repeat(
        [STRENGTH[mode] * (FILL_SHARE if fill else 1.0) for fill in fill_bars], reference.steps_per_bar
    )
    return ((log_odds * strength[:, None]).astype(np.float32)) @ _BITS.T


@dataclass(frozen=True)
class Template:
    """Per (step of bar, instrument): mean offset (16th steps) and velocity (0–1) where the reference hits, and
    per instrument the mean and the spread around the per-step means."""

    offset: np.ndarray  # (steps_per_bar, 9), NaN where never hit
    velocity: np.ndarray  # (steps_per_bar, 9), NaN where never hit
    instrument_offset: np.ndarray  # (9,), NaN for an instrument the reference never plays
    instrument_velocity: np.ndarray  # (9,)
    offset_spread: np.ndarray  # (9,) 16th steps
    velocity_spread: np.ndarray  # (9,) 0–1

    @classmethod
    def of(cls, reference: Reference) -> Template:
        bars = reference.bars()
        offsets = reference.grid.offset.reshape(bars.shape).astype(np.float64)
        velocities = reference.grid.velocity.reshape(bars.shape).astype(np.float64)
        count = bars.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            step_offset = np.where(count > 0, (offsets * bars).sum(0) / count, np.nan)
            step_velocity = np.where(count > 0, (velocities * bars).sum(0) / count, np.nan)
        instrument_offset = np.full(N_CLASSES, np.nan)
        instrument_velocity = np.full(N_CLASSES, np.nan)
        offset_spread = np.zeros(N_CLASSES)
        velocity_spread = np.zeros(N_CLASSES)
        for c in range(N_CLASSES):
            hit = bars[..., c]
            if not hit.any():
                continue
            instrument_offset[c] = offsets[..., c][hit].mean()
            instrument_velocity[c] = velocities[..., c][hit].mean()
            step_index = np.nonzero(hit)[1]
            offset_spread[c] = (offsets[..., c][hit] - step_offset[step_index, c]).std()
            velocity_spread[c] = (velocities[..., c][hit] - step_velocity[step_index, c]).std()
        return cls(step_offset, step_velocity, instrument_offset, instrument_velocity, offset_spread, velocity_spread)

    def at(self, step: int, instrument: int) -> tuple[float, float]:
        """(offset in 16th steps, velocity 0–1) the template gives ``instrument`` on ``step`` of the bar."""
        offset = self.offset[step % len(self.offset), instrument]
        velocity = self.velocity[step % len(self.velocity), instrument]
        if math.isnan(offset):
            offset = self.instrument_offset[instrument]
            velocity = self.instrument_velocity[instrument]
        if math.isnan(offset):  # an instrument the reference never plays (only a section can add one)
            return 0.0, 0.7
        return float(offset), float(velocity)


def humanize_like(
    hits: list[Hit],
    template: Template,
    humanization: Humanization,
    rng: np.random.Generator,
    enabled: bool = True,
) -> list[PlacedHit]:
    """Place and voice ``hits`` with the reference's feel (module docstring); the style's velocity floors
    still hold. ``enabled=False``: on the grid with the arranged velocities, as :func:`humanize.humanize`."""
    z_scores = model_z_scores(hits, None, rng)
    noise = rng.standard_normal(len(hits))
    placed = []
    for hit, z, velocity_noise in zip(hits, z_scores, noise, strict=True):
        if not enabled:
            offset, velocity = hit.grid_offset, hit.velocity
        else:
            offset, velocity = template.at(hit.step, hit.instrument)
            offset = hit.grid_offset + offset + float(template.offset_spread[hit.instrument]) * z
            velocity = velocity + float(template.velocity_spread[hit.instrument]) * float(velocity_noise)
        midi_velocity = int(np.clip(round(velocity * 127.0), humanization.velocity_floor, 127))
        placed.append(
            PlacedHit(hit.bar, hit.step, hit.instrument, hit.pitch, midi_velocity, offset, hit.ghost, hit.roll)
        )
    return placed


def output_stats(placed: list[PlacedHit], *, n_bars: int, steps_per_bar: int, tempo_bpm: float) -> dict[str, Any]:
    """:func:`feel.groove_stats` of placed hits (roll hits measured from their 16th step too)."""
    hits = [FeelHit(h.bar, h.step, h.instrument, h.offset_steps, h.velocity) for h in placed]
    return groove_stats(hits, n_bars=n_bars, steps_per_bar=steps_per_bar, tempo_bpm=tempo_bpm)


def describe(reference: Reference) -> Mapping[str, Any]:
    """Facts about a reference for the job's input info and result."""
    used = [DRUM_CLASSES[c] for c in range(N_CLASSES) if reference.grid.hits[:, c].any()]
    return {
        "format": "midi",
        "tempo_bpm": round(reference.tempo_bpm, 3),
        "time_signature": [reference.numerator, reference.denominator],
        "bars": reference.n_bars,
        "hits": int(reference.grid.hits.sum()),
        "instruments": used,
    }
