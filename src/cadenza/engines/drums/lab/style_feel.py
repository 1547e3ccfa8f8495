"""Measured feel of every catalogue style next to what its entry declares and the GMD genres it is conditioned on.

For each style: ``seeds`` grooves of ``bars`` bars at the style's default tempo (verse, humanized), through the
engine's own :func:`engine.compose` (model → arrangement → humanization), measured per instrument relative to
the swung grid (mean and spread of the offsets, ms; roll hits left out, their subdivision is structural),
and per 2-bar window relative to the straight grid (the spread of all offsets in 16th steps and the mean
velocity: the figures ``gmd_feel.json`` holds for the dataset's drummers). Also the lowest velocity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cadenza.engines.drums.arrange import Meter
from cadenza.engines.drums.engine import compose, default_tempo
from cadenza.engines.drums.feel import conditioning_feel, gmd_feel
from cadenza.engines.drums.humanize import step_duration_ms, swing_offset_steps
from cadenza.engines.drums.schema import DrumsRequest
from cadenza.engines.drums.styles import Style, StyleCatalog
from cadenza.music.drum_map import DRUM_CLASSES

WINDOW_BARS = 2


def measure_style(model: Any, style: Style, seeds: Sequence[int], bars: int = 8) -> dict[str, Any]:
    """Measured, declared and data timing of one style (see the module docstring)."""
    tempo = default_tempo(style)
    meter = Meter.of(4, 4)
    step_ms = step_duration_ms(tempo)
    swing = style.humanization.swing_percent
    offsets: dict[str, list[float]] = {name: [] for name in DRUM_CLASSES}
    spreads, velocities, lowest = [], [], 127
    for seed in seeds:
        params = DrumsRequest(producer_style=style.name, bars=bars, tempo=tempo, seed=seed)
        groove = compose(model, style, params, meter, seed)
        for hit in groove.placed:
            if not hit.roll:
                swung = hit.offset_steps - swing_offset_steps(hit.step, swing)
                offsets[DRUM_CLASSES[hit.instrument]].append(swung * step_ms)
            lowest = min(lowest, hit.velocity)
        for start in range(0, bars, WINDOW_BARS):
            window = [h for h in groove.placed if start <= h.bar < start + WINDOW_BARS]
            if len(window) >= 2:
                spreads.append(float(np.std([h.offset_steps for h in window])))
                velocities.append(float(np.mean([h.velocity for h in window])) / 127.0)
    declared = style.humanization.microtiming_ms
    data = conditioning_feel(style.conditioning)
    instruments = {}
    for name, values in offsets.items():
        if len(values) < 2:
            continue
        entry: dict[str, Any] = {
            "hits": len(values),
            "measured_mean_ms": round(float(np.mean(values)), 2),
            "measured_std_ms": round(float(np.std(values)), 2),
        }
        if name in declared:
            entry["declared_mean_ms"], entry["declared_std_ms"] = declared[name].mean_ms, declared[name].std_ms
        if name in data:
            entry["gmd_mean_ms"] = round(data[name].offset_mean_ms, 2)
            entry["gmd_std_ms"] = round(data[name].offset_std_ms, 2)
        instruments[name] = entry
    return {
        "tempo_bpm": tempo,
        "conditioning": dict(style.conditioning),
        "swing_percent": swing,
        "grooves": len(seeds),
        "bars": bars,
        "offset_std_steps": round(float(np.mean(spreads)), 4),
        "velocity_mean": round(float(np.mean(velocities)), 4),
        "velocity_min": lowest,
        "instruments": instruments,
    }


def gmd_reference(genres: Sequence[str]) -> dict[str, float]:
    """The GMD train split's window spread and mean velocity over ``genres`` (weighted by windows)."""
    entries = [gmd_feel()["genres"][g] for g in genres if g in gmd_feel()["genres"]]
    windows = np.asarray([e["windows"] for e in entries], dtype=np.float64)
    return {
        "offset_std_steps": round(float(np.average([e["offset_std_steps"] for e in entries], weights=windows)), 4),
        "velocity_mean": round(float(np.average([e["velocity_mean"] for e in entries], weights=windows)), 4),
    }


def style_feel_report(model: Any, catalog: StyleCatalog, seeds: Sequence[int], bars: int = 8) -> dict[str, Any]:
    """:func:`measure_style` for every style of ``catalog``, plus J Dilla + Questlove pooled against GMD hip-hop
    and soul (the issue's yardstick), keyed by style name."""
    styles = {style.name: measure_style(model, style, seeds, bars) for style in catalog.styles}
    pooled = [styles[name] for name in ("J Dilla", "Questlove") if name in styles]
    summary = {}
    if pooled:
        summary = {
            "styles": [name for name in ("J Dilla", "Questlove") if name in styles],
            "offset_std_steps": round(float(np.mean([s["offset_std_steps"] for s in pooled])), 4),
            "velocity_mean": round(float(np.mean([s["velocity_mean"] for s in pooled])), 4),
            "gmd_hiphop_soul": gmd_reference(("hiphop", "soul")),
        }
    return {"seeds": list(seeds), "bars": bars, "styles": styles, "hiphop_soul": summary}
