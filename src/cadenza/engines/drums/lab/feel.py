"""Measure the Groove MIDI Dataset's feel per genre: the data file ``gmd_feel.json`` humanization is calibrated on.

For every primary GMD genre, over the beat files (not fills) of one split, in windows of ``window_bars`` bars:
per instrument the mean micro-timing (ms and 16th steps, relative to the straight 16th grid), its spread
*within* a window (root mean square of per-window standard deviations, so a drummer drifting against the
click between takes does not count as feel), the velocity mean and spread, and the same per position in
the beat for 4/4 files (on the beat, "e", "and", "a"); plus the spread of all offsets and the mean velocity
per window, the two figures the evaluation compares generated grooves with.

    .venv/bin/python -m cadenza.engines.drums.lab.feel --data ../shared/data/groove

Data: GMD v1.0.0 (Gillick et al., ICML 2019), CC BY 4.0; train split by default (the test split stays for
the evaluation).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cadenza.engines.drums.data import GMD_STYLES, GrooveRecord, iter_windows, load_records
from cadenza.engines.drums.feel import GMD_FEEL_PATH, POSITION_NAMES
from cadenza.music.drum_map import DRUM_CLASSES

WINDOW_BARS = 2


def _rms(values: Sequence[float]) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else 0.0


def window_spread(records: Iterable[GrooveRecord], window_bars: int = WINDOW_BARS) -> dict[str, float]:
    """Mean over ``window_bars`` windows of the standard deviation of all hits' offsets (16th steps) and of
    the mean velocity (0–1): the groove-level figures the evaluation compares with."""
    spreads, velocities = [], []
    for _record, _start, window in iter_windows(records, window_bars):
        offsets = window.offset[window.hits]
        if offsets.size >= 2:
            spreads.append(float(offsets.std()))
            velocities.append(float(window.velocity[window.hits].mean()))
    return {
        "windows": len(spreads),
        "offset_std_steps": round(float(np.mean(spreads)), 4) if spreads else None,
        "velocity_mean": round(float(np.mean(velocities)), 4) if velocities else None,
    }


def genre_feel(records: Sequence[GrooveRecord], window_bars: int = WINDOW_BARS) -> dict[str, Any]:
    """The feel of one genre's beat records (see the module docstring)."""
    offsets_ms: dict[int, list[float]] = defaultdict(list)
    offsets_steps: dict[int, list[float]] = defaultdict(list)
    velocities: dict[int, list[float]] = defaultdict(list)
    within_ms: dict[int, list[float]] = defaultdict(list)
    within_steps: dict[int, list[float]] = defaultdict(list)
    by_position: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    for record, start, window in iter_windows(records, window_bars):
        step_ms = 60_000.0 / record.tempo_bpm / 4.0
        steps = np.arange(start, start + window.n_steps)
        for cls in range(len(DRUM_CLASSES)):
            hit = window.hits[:, cls]
            if not hit.any():
                continue
            offset = window.offset[hit, cls].astype(np.float64)
            offsets_steps[cls] += offset.tolist()
            offsets_ms[cls] += (offset * step_ms).tolist()
            velocities[cls] += window.velocity[hit, cls].astype(np.float64).tolist()
            if offset.size >= 2:
                within_steps[cls].append(float(offset.std()))
                within_ms[cls].append(float(offset.std() * step_ms))
            if record.steps_per_beat == 4 and record.steps_per_bar == 16:
                for position, off, vel in zip(steps[hit] % 4, offset * step_ms, window.velocity[hit, cls], strict=True):
                    by_position[(cls, int(position))].append((float(off), float(vel)))
    instruments: dict[str, Any] = {}
    for cls, name in enumerate(DRUM_CLASSES):
        if not offsets_ms[cls]:
            continue
        positions = {}
        total = sum(len(by_position[(cls, p)]) for p in range(4))
        for p, label in enumerate(POSITION_NAMES):
            values = np.asarray(by_position[(cls, p)])
            if len(values):
                positions[label] = {
                    "share": round(len(values) / total, 4),
                    "offset_mean_ms": round(float(values[:, 0].mean()), 2),
                    "offset_std_ms": round(float(values[:, 0].std()), 2),
                    "velocity_mean": round(float(values[:, 1].mean()), 4),
                }
        instruments[name] = {
            "hits": len(offsets_ms[cls]),
            "offset_mean_ms": round(float(np.mean(offsets_ms[cls])), 2),
            "offset_std_ms": round(_rms(within_ms[cls]), 2),
            "offset_mean_steps": round(float(np.mean(offsets_steps[cls])), 4),
            "offset_std_steps": round(_rms(within_steps[cls]), 4),
            "velocity_mean": round(float(np.mean(velocities[cls])), 4),
            "velocity_std": round(float(np.std(velocities[cls])), 4),
            "by_position_4_4": positions,
        }
    return {"files": len(records), **window_spread(records, window_bars), "instruments": instruments}


def measure(data_dir: Path, split: str = "train", window_bars: int = WINDOW_BARS) -> dict[str, Any]:
    """The whole ``gmd_feel.json`` document for ``split`` of the GMD folder ``data_dir``."""
    records = [r for r in load_records(data_dir, splits=(split,)) if not r.is_fill]
    genres = {}
    for genre in GMD_STYLES:
        subset = [r for r in records if r.style == genre]
        if subset:
            genres[genre] = genre_feel(subset, window_bars)
    return {
        "source": "Groove MIDI Dataset v1.0.0 (Gillick, Roberts, Engel, Eck, Bamman, ICML 2019), CC BY 4.0",
        "split": split,
        "beat_files_only": True,
        "window_bars": window_bars,
        "command": f"python -m cadenza.engines.drums.lab.feel --data <GMD folder> --split {split}",
        "units": "offsets relative to the straight 16th grid (+ = late); velocity = MIDI velocity / 127",
        "genres": genres,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Groove MIDI Dataset folder (with info.csv).")
    parser.add_argument("--split", default="train", choices=("train", "validation", "test"))
    parser.add_argument("--out", type=Path, default=GMD_FEEL_PATH)
    args = parser.parse_args(argv)
    document = measure(args.data, args.split)
    args.out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(document['genres'])} genres)")


if __name__ == "__main__":
    main()
