"""Groove MIDI Dataset (GMD) loading: MIDI files → hit/velocity/offset grids of 16th-note steps.

Representation after GrooVAE (Gillick et al., "Learning to Groove with Inverse Sequence
Transformations", ICML 2019): one row per 16th-note step, one column per drum class of
``cadenza.music.drum_map.DRUM_CLASSES`` (9), and per cell a hit flag, a velocity in [0, 1]
(MIDI velocity / 127) and an offset in 16th-step units in [-0.5, 0.5) (micro-timing of the played
hit relative to its grid step). When two hits of one class land in one step the loudest is kept.

Data: GMD v1.0.0 (CC BY 4.0), ``info.csv`` with the official train/validation/test split.
The data folder is always an argument; nothing here knows where it lives.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

# Primary GMD styles (the part of ``info.csv``'s ``style`` before the slash), most files first.
from cadenza.engines.drums.gmd import GMD_STYLES as GMD_STYLES  # re-exported: the GMD pipeline names it here
from cadenza.music.drum_map import N_CLASSES, PITCH_TO_CLASS

SPLITS: tuple[str, ...] = ("train", "validation", "test")

N_PATTERNS = 1 << N_CLASSES  # 512 joint hit patterns of the 9 classes
N_VELOCITY_BINS = 8  # uniform bins over [0, 1]
N_OFFSET_BINS = 9  # uniform bins over [-0.5, 0.5) 16th steps
MAX_STEPS_PER_BEAT = 8
MAX_BEATS_PER_BAR = 16


@dataclass
class Grid:
    """A drum pattern on a 16th-note grid.

    ``hits``: (n_steps, 9) bool. ``velocity``: (n_steps, 9) float32 in [0, 1], 0 where no hit.
    ``offset``: (n_steps, 9) float32 in [-0.5, 0.5) 16th steps, 0 where no hit.
    """

    hits: np.ndarray
    velocity: np.ndarray
    offset: np.ndarray

    @property
    def n_steps(self) -> int:
        return int(self.hits.shape[0])

    def slice(self, start: int, stop: int) -> Grid:
        """Steps ``start:stop`` as a new Grid (views of the arrays)."""
        return Grid(self.hits[start:stop], self.velocity[start:stop], self.offset[start:stop])

    @staticmethod
    def empty(n_steps: int) -> Grid:
        return Grid(
            np.zeros((n_steps, N_CLASSES), dtype=bool),
            np.zeros((n_steps, N_CLASSES), dtype=np.float32),
            np.zeros((n_steps, N_CLASSES), dtype=np.float32),
        )


@dataclass
class GrooveRecord:
    """One GMD file as a grid plus its ``info.csv`` metadata (``style`` is the primary style)."""

    id: str
    drummer: str
    split: str
    style: str
    beat_type: str  # "beat" or "fill"
    tempo_bpm: float
    numerator: int
    denominator: int
    steps_per_bar: int
    steps_per_beat: int
    grid: Grid

    @property
    def is_fill(self) -> bool:
        return self.beat_type == "fill"

    @property
    def n_bars(self) -> int:
        return self.grid.n_steps // self.steps_per_bar


def meter_grid(numerator: int, denominator: int) -> tuple[int, int]:
    """``(steps_per_bar, steps_per_beat)`` in 16th-note steps for a time signature.

    steps_per_bar = numerator × 16 / denominator (4/4 → 16, 3/4 → 12, 6/8 → 12, 7/8 → 14).
    steps_per_beat: 4 for x/4; 6 for x/8 with a numerator divisible by 3 (compound meters 3/8, 6/8,
    9/8, 12/8: dotted-quarter beats); 2 for other x/8 (5/8, 7/8: eighth-note beats); 8 for x/2;
    1 for x/16. Raises ValueError for a denominator outside {2, 4, 8, 16} or a numerator outside
    1..32 (or one giving more than 16 beats per bar).
    """
    if denominator not in (2, 4, 8, 16):
        raise ValueError(f"time signature denominator must be 2, 4, 8 or 16, got {denominator}")
    if not 1 <= numerator <= 32:
        raise ValueError(f"time signature numerator must be 1..32, got {numerator}")
    steps_per_bar = numerator * 16 // denominator
    if denominator == 4:
        steps_per_beat = 4
    elif denominator == 8:
        steps_per_beat = 6 if numerator % 3 == 0 else 2
    elif denominator == 2:
        steps_per_beat = 8
    else:
        steps_per_beat = 1
    if steps_per_bar // steps_per_beat > MAX_BEATS_PER_BAR:
        raise ValueError(f"{numerator}/{denominator} has more than {MAX_BEATS_PER_BAR} beats per bar")
    return steps_per_bar, steps_per_beat


def metric_positions(n_steps: int, steps_per_bar: int, steps_per_beat: int) -> dict[str, np.ndarray]:
    """Metric-position features of steps ``0..n_steps-1`` (bar 0 starts at step 0).

    Returns int64 arrays of shape (n_steps,): ``pos_in_beat`` (0..steps_per_beat-1),
    ``beat_in_bar`` (0..beats_per_bar-1, the last beat may be partial), ``beats_per_bar`` (constant)
    and ``bar_start`` (1 on the first step of a bar).
    """
    if steps_per_bar < 1 or not 1 <= steps_per_beat <= MAX_STEPS_PER_BEAT or steps_per_beat > steps_per_bar:
        raise ValueError(f"bad meter grid: steps_per_bar={steps_per_bar}, steps_per_beat={steps_per_beat}")
    beats_per_bar = math.ceil(steps_per_bar / steps_per_beat)
    if beats_per_bar > MAX_BEATS_PER_BAR:
        raise ValueError(f"more than {MAX_BEATS_PER_BAR} beats per bar")
    step_in_bar = np.arange(n_steps, dtype=np.int64) % steps_per_bar
    return {
        "pos_in_beat": step_in_bar % steps_per_beat,
        "beat_in_bar": step_in_bar // steps_per_beat,
        "beats_per_bar": np.full(n_steps, beats_per_bar, dtype=np.int64),
        "bar_start": (step_in_bar == 0).astype(np.int64),
    }


def midi_to_grid(path: Path, drums_only: bool = False) -> tuple[Grid, int, int, float]:
    """Read a drum MIDI file into a Grid. Returns ``(grid, numerator, denominator, tempo_bpm)``.

    See :func:`score_to_grid`. Raises ValueError if the file cannot be parsed or has no drum notes.
    """
    try:
        score = symusic.Score.from_midi(Path(path).read_bytes())
    except Exception as exc:  # symusic raises RuntimeError and friends for broken files
        raise ValueError(f"cannot read MIDI file {path}: {exc}") from exc
    try:
        return score_to_grid(score, drums_only)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def score_to_grid(score: symusic.Score, drums_only: bool = False) -> tuple[Grid, int, int, float]:
    """A parsed MIDI score as a Grid. Returns ``(grid, numerator, denominator, tempo_bpm)``.

    Uses the file's first time signature (4/4 if none) and first tempo (120 BPM if none); the grid
    starts at tick 0 (a bar line) and is padded with silence to whole bars. Notes whose pitch has no
    drum class are ignored, and with ``drums_only`` every track that is not a drum track (MIDI channel 10).
    Raises ValueError for an unsupported time signature or no drum notes.
    """
    numerator, denominator = 4, 4
    if len(score.time_signatures):
        ts = score.time_signatures[0]
        numerator, denominator = int(ts.numerator), int(ts.denominator)
    tempo_bpm = float(score.tempos[0].qpm) if len(score.tempos) else 120.0
    steps_per_bar, _ = meter_grid(numerator, denominator)
    step_ticks = score.ticks_per_quarter / 4.0
    times, classes, velocities = [], [], []
    for track in score.tracks:
        if drums_only and not track.is_drum:
            continue
        for note in track.notes:
            cls = PITCH_TO_CLASS.get(int(note.pitch))
            if cls is None or note.velocity <= 0:
                continue
            times.append(note.time / step_ticks)
            classes.append(cls)
            velocities.append(note.velocity)
    if not times:
        raise ValueError("no drum notes")
    position = np.asarray(times, dtype=np.float64)
    step = np.floor(position + 0.5).astype(np.int64)
    offset = (position - step).astype(np.float32)
    n_steps = int(math.ceil((step.max() + 1) / steps_per_bar) * steps_per_bar)
    grid = Grid.empty(n_steps)
    velocity = np.asarray(velocities, dtype=np.float32) / 127.0
    cls_arr = np.asarray(classes, dtype=np.int64)
    # Loudest hit per (step, class) wins: write in ascending velocity so the loudest comes last.
    order = np.argsort(velocity, kind="stable")
    grid.hits[step[order], cls_arr[order]] = True
    grid.velocity[step[order], cls_arr[order]] = velocity[order]
    grid.offset[step[order], cls_arr[order]] = np.clip(offset[order], -0.5, np.nextafter(np.float32(0.5), 0))
    return grid, numerator, denominator, tempo_bpm


def read_info(data_dir: Path) -> list[dict[str, str]]:
    """Rows of ``<data_dir>/info.csv``. Raises FileNotFoundError if the folder is not GMD."""
    info = Path(data_dir) / "info.csv"
    if not info.is_file():
        raise FileNotFoundError(f"{info} not found: --data must be the Groove MIDI Dataset folder")
    with info.open(newline="") as handle:
        return list(csv.DictReader(handle))


def load_records(
    data_dir: Path,
    splits: Iterable[str] = SPLITS,
    limit: int | None = None,
    styles: Sequence[str] | None = None,
) -> list[GrooveRecord]:
    """Load GMD files of the given splits as GrooveRecords, in ``info.csv`` order.

    ``limit``: at most this many files per split (for smoke tests). ``styles``: keep only these
    primary styles. Raises ValueError for an unknown split name.
    """
    splits = tuple(splits)
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    counts = dict.fromkeys(splits, 0)
    records = []
    for row in read_info(data_dir):
        split = row["split"]
        if split not in counts or (limit is not None and counts[split] >= limit):
            continue
        style = row["style"].split("/")[0].strip().lower()
        if styles is not None and style not in styles:
            continue
        grid, numerator, denominator, tempo_bpm = midi_to_grid(Path(data_dir) / row["midi_filename"])
        steps_per_bar, steps_per_beat = meter_grid(numerator, denominator)
        records.append(
            GrooveRecord(
                id=row["id"],
                drummer=row["drummer"],
                split=split,
                style=style,
                beat_type=row["beat_type"],
                tempo_bpm=tempo_bpm,
                numerator=numerator,
                denominator=denominator,
                steps_per_bar=steps_per_bar,
                steps_per_beat=steps_per_beat,
                grid=grid,
            )
        )
        counts[split] += 1
    return records


def encode_patterns(hits: np.ndarray) -> np.ndarray:
    """(n_steps, 9) bool → (n_steps,) int64 joint hit pattern in 0..511 (bit i = class i)."""
    weights = 1 << np.arange(hits.shape[-1], dtype=np.int64)
    return (hits.astype(np.int64) * weights).sum(-1)


def decode_patterns(patterns: np.ndarray) -> np.ndarray:
    """(n_steps,) int → (n_steps, 9) bool; inverse of :func:`encode_patterns`."""
    return ((np.asarray(patterns)[..., None] >> np.arange(N_CLASSES)) & 1).astype(bool)


def velocity_bins(velocity: np.ndarray) -> np.ndarray:
    """Velocity in [0, 1] → bin index 0..N_VELOCITY_BINS-1 (uniform bins)."""
    return np.clip((np.asarray(velocity) * N_VELOCITY_BINS).astype(np.int64), 0, N_VELOCITY_BINS - 1)


def offset_bins(offset: np.ndarray) -> np.ndarray:
    """Offset in [-0.5, 0.5) 16th steps → bin index 0..N_OFFSET_BINS-1 (uniform bins)."""
    return np.clip(((np.asarray(offset) + 0.5) * N_OFFSET_BINS).astype(np.int64), 0, N_OFFSET_BINS - 1)


def iter_windows(records: Iterable[GrooveRecord], n_bars: int, hop_bars: int | None = None) -> Iterator[tuple]:
    """Yield ``(record, start_step, Grid)`` for every whole ``n_bars`` window of each record.

    Windows start on bar lines every ``hop_bars`` bars (default ``n_bars``: no overlap); windows
    with no hits are skipped.
    """
    hop = hop_bars or n_bars
    for rec in records:
        length = n_bars * rec.steps_per_bar
        for bar in range(0, rec.n_bars - n_bars + 1, hop):
            start = bar * rec.steps_per_bar
            window = rec.grid.slice(start, start + length)
            if window.hits.any():
                yield rec, start, window
