"""From placed hits to the loop-safe ``pattern.json`` document and MIDI notes with per-instrument lengths.

**Loops.** A groove is a loop: its file is exactly ``bars`` bars long and every hit sits at its musical time
modulo that length. A hit played early on the first downbeat (negative offset) is written at the end of the
file (``wrapped: true`` in ``pattern.json``), and a late hit on the last 16th wraps to the start, so a groove
looped end to end keeps its timing across the seam: the first downbeat is exactly as early as every other.
Placed once (not looped), such a hit sounds at the end; use the ``offset_ms`` of ``pattern.json`` to place it
before the bar line instead.

**Note lengths** (16th steps), for samplers that respond to note length or choke: kick, snare and toms a
16th, closed hi-hat a 32nd, open hi-hat until the next hi-hat hit (the pedal closing it; at most a bar),
crash until the next crash (at most a bar), ride a quarter; never past the next hit of the same key.
"""

from __future__ import annotations

import bisect
from typing import Any

from cadenza.engines.drums.arrange import CLOSED_HH, CRASH, OPEN_HH, Meter
from cadenza.engines.drums.humanize import PlacedHit
from cadenza.music.drum_map import DRUM_CLASSES
from cadenza.music.midi import DEFAULT_PPQ, DrumNote

LOOP_POLICY = "wrap"
#: Note length per drum class in 16th steps (None: until the next hit that chokes it, at most a bar).
NOTE_STEPS: dict[str, float | None] = {
    "kick": 1.0,
    "snare": 1.0,
    "closed_hihat": 0.5,
    "open_hihat": None,
    "low_tom": 1.0,
    "mid_tom": 1.0,
    "high_tom": 1.0,
    "crash": None,
    "ride": 4.0,
}
#: Classes whose next hit ends a ringing one (a closing hi-hat chokes the open one; a new crash the old).
CHOKED_BY: dict[int, frozenset[int]] = {OPEN_HH: frozenset({CLOSED_HH, OPEN_HH}), CRASH: frozenset({CRASH})}


def note_durations(ticks: list[int], instruments: list[int], *, step_ticks: int, bar_ticks: int) -> list[int]:
    """Length in ticks of each hit (``ticks`` in file order positions, ``instruments`` class indices)."""
    choke_ticks = {
        instrument: sorted(t for t, i in zip(ticks, instruments, strict=True) if i in chokers)
        for instrument, chokers in CHOKED_BY.items()
    }
    durations = []
    for tick, instrument in zip(ticks, instruments, strict=True):
        steps = NOTE_STEPS[DRUM_CLASSES[instrument]]
        if steps is not None:
            durations.append(max(1, round(steps * step_ticks)))
            continue
        later = choke_ticks[instrument]
        index = bisect.bisect_right(later, tick)
        durations.append(min(bar_ticks, later[index] - tick) if index < len(later) else bar_ticks)
    return durations


def pattern_document(
    hits: list[PlacedHit], *, header: dict[str, Any], meter: Meter, tempo_bpm: float, total_ticks: int
) -> tuple[dict[str, Any], list[DrumNote]]:
    """The pattern.json document and the MIDI notes of ``hits``, loop-safe (see the module docstring).

    Each entry has ``tick`` (where the note is in the file), ``offset_ticks``/``offset_ms`` (its placement
    relative to its grid step, + = late), ``duration_ticks`` and ``wrapped`` (moved by a whole loop length).
    """
    step_ticks = DEFAULT_PPQ // 4
    bar_ticks = meter.steps_per_bar * step_ticks
    ms_per_tick = 60_000.0 / (tempo_bpm * DEFAULT_PPQ)
    placed = []
    for hit in hits:
        grid_tick = hit.bar * bar_ticks + hit.step * step_ticks
        offset_ticks = round(hit.offset_steps * step_ticks)
        placed.append((grid_tick, offset_ticks, (grid_tick + offset_ticks) % total_ticks))
    durations = note_durations(
        [p[2] for p in placed], [h.instrument for h in hits], step_ticks=step_ticks, bar_ticks=bar_ticks
    )
    entries, notes = [], []
    for hit, (grid_tick, offset_ticks, tick), duration in zip(hits, placed, durations, strict=True):
        entries.append(
            {
                "instrument": DRUM_CLASSES[hit.instrument],
                "pitch": hit.pitch,
                "bar": hit.bar,
                "step": hit.step,
                "tick": tick,
                "offset_ticks": offset_ticks,
                "offset_ms": round(offset_ticks * ms_per_tick, 3),
                "duration_ticks": min(duration, total_ticks - tick),
                "velocity": hit.velocity,
                "ghost": hit.ghost,
                "roll": hit.roll,
                "wrapped": tick != grid_tick + offset_ticks,
            }
        )
        notes.append(DrumNote(tick, hit.pitch, hit.velocity, duration))
    loop = {
        "policy": LOOP_POLICY,
        "length_ticks": total_ticks,
        "wrapped_hits": sum(entry["wrapped"] for entry in entries),
        "note": "Hits played before the first downbeat are written at the end of the file (and late hits on the "
        "last 16th at the start), so the file loops seamlessly.",
    }
    return {**header, "loop": loop, "hits": entries}, notes
