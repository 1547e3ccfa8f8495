"""The parts of a track as notes at :data:`PPQ` ticks per quarter: drums (the drums engine), bass, harmony
and pad (the genre's patterns over the chords), lead (the melody engine, chord tones on strong beats).

Patterns are written for an 8-eighth bar and scaled to the meter's eighths (6 in 3/4 and 6/8, 12 in 12/8,
4 in 2/4). Pitched parts swing their off-beat eighths by the genre's ``swing_percent`` (50 = straight,
66 ≈ triplet feel).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cadenza.engines.track.plan import Plan, Section
from cadenza.music.harmony import Chord, voice

PPQ = 480
EIGHTH = PPQ // 2
BASS_LOW = 28  # E1: bass roots sit in E1-D#2
PART_STREAMS = {"bass": 21, "harmony": 22, "lead": 23, "pad": 24, "drums": 25}


@dataclass
class PartNotes:
    """One part: notes (tick, duration ticks, MIDI pitch, velocity), pitch bends (tick, −8192…8191), lyric
    syllables (tick, text) and its General MIDI program (None = drums on channel 10)."""

    name: str
    role: str
    program: int | None
    notes: list[tuple[int, int, int, int]] = field(default_factory=list)
    bends: list[tuple[int, int]] = field(default_factory=list)
    lyrics: list[tuple[int, str]] = field(default_factory=list)
    bend_range: int = 2


def bar_ticks(plan: Plan) -> int:
    numerator, denominator = plan.meter
    return numerator * 4 * PPQ // denominator


def _eighths(plan: Plan) -> int:
    return bar_ticks(plan) // EIGHTH


SIXTEENTH = PPQ // 4


def _scaled(positions: list[tuple[float, float]], eighths: int) -> list[tuple[int, int, int]]:
    """(onset, length) in eighths of an 8-eighth bar → (onset ticks, length ticks, index into ``positions``) in
    a bar of ``eighths`` eighths, on the 16th grid; a position landing on an earlier one's onset is dropped."""
    out: dict[int, tuple[int, int]] = {}
    for index, (onset, length) in enumerate(positions):
        start = round(onset * eighths / 8 * 2) * SIXTEENTH
        if start < eighths * EIGHTH and start not in out:
            out[start] = (max(SIXTEENTH, round(length * eighths / 8 * 2) * SIXTEENTH), index)
    return [(start, length, index) for start, (length, index) in sorted(out.items())]


def _swing(tick: int, percent: float) -> int:
    """Delay an off-beat eighth by ``(percent − 50) / 50`` of an eighth (MPC-style swing)."""
    if percent <= 50 or tick % PPQ != EIGHTH:
        return tick
    return tick + round((percent - 50) / 50 * EIGHTH)


def _velocity(base: float, energy: float, accent: bool, rng: np.random.Generator) -> int:
    value = base * (0.7 + 0.45 * energy) * (1.08 if accent else 1.0) + rng.normal(0, 3)
    return int(np.clip(round(value), 20, 127))


def _root_pitch(chord: Chord, tonic_pc: int, low: int = BASS_LOW) -> int:
    return low + (tonic_pc + chord.root - low) % 12


BASS_PATTERNS: dict[str, list[tuple[float, float, str]]] = {
    # (onset eighth, length in eighths, what: root, fifth, octave, third, approach)
    "root_eighths": [(i, 1, "root") for i in range(7)] + [(7, 1, "approach")],
    "root_syncopated": [(0, 2.5, "root"), (3, 1, "root"), (4, 2, "fifth"), (6.5, 0.5, "octave"), (7, 1, "approach")],
    "glide_808": [(0, 3, "root"), (3, 1, "root"), (5, 3, "octave")],
    "offbeat_octaves": [(1, 1, "root"), (3, 1, "octave"), (5, 1, "root"), (7, 1, "octave")],
    "walking": [(0, 2, "root"), (2, 2, "third"), (4, 2, "fifth"), (6, 2, "approach")],
    "reggae": [(0, 2, "root"), (3, 1, "root"), (4, 2, "fifth"), (7, 1, "approach")],
    "tumbao": [(3, 3, "root"), (6, 2, "next")],
    "sustained": [(0, 8, "root")],
}
COMP_PATTERNS: dict[str, list[tuple[float, float]]] = {
    "sustained_chords": [(0, 8)],
    "stabs": [(1, 0.6), (3, 0.6), (5, 0.6), (7, 0.6)],
    "arpeggio": [(i, 1) for i in range(8)],
    "strum": [(0, 2), (2, 2), (4, 2), (6, 2)],
    "skank": [(2, 0.7), (6, 0.7)],
    "charleston": [(0, 1.5), (3, 1)],
    "montuno": [(0, 1), (1.5, 1), (3, 1), (4, 1), (5.5, 1), (7, 1)],
}


def bass_part(plan: Plan, spec: Any, seed: int) -> PartNotes:
    """Roots, fifths and approach notes (a scale or chromatic step into the next chord's root) in the genre's
    rhythm; energy under 0.45 keeps only the notes on the beat. ``glide_808`` glides (pitch bend, ±12
    semitones) into the next bar's root."""
    rng = np.random.default_rng([seed, PART_STREAMS["bass"]])
    part = PartNotes(spec.name, "bass", spec.program)
    tonic, length = plan.key.tonic_pc, bar_ticks(plan)
    scale = set(plan.key.scale_pcs())
    pattern = BASS_PATTERNS[plan.genre.bass]
    glide = plan.genre.bass == "glide_808"
    if glide:
        part.bend_range = 12
    for bar, chord in enumerate(plan.chords):
        start = bar * length
        nxt = plan.chords[(bar + 1) % len(plan.chords)] if (bar + 1 < len(plan.chords) or plan.loop) else chord
        root, next_root = _root_pitch(chord, tonic), _root_pitch(nxt, tonic)
        energy = plan.energy[bar]
        third = root + (chord.intervals[1] if len(chord.intervals) > 1 else 4)
        for onset, dur, index in _scaled([(o, d) for o, d, _ in pattern], _eighths(plan)):
            what = pattern[index][2]
            if energy < 0.45 and onset % (PPQ if plan.meter[1] == 4 else 3 * EIGHTH) and plan.genre.bass != "sustained":
                continue
            if what == "approach":
                if next_root == root:
                    pitch = root + 7 if onset % PPQ else root
                else:
                    step = -1 if next_root > root else 1
                    below = next_root + step
                    pitch = below if below % 12 in scale else next_root - step * 2
            else:
                pitch = {"root": root, "fifth": root + 7, "octave": root + 12, "third": third, "next": next_root}[what]
            tick = start + _swing(onset, plan.swing_percent)
            dur = min(dur, length - onset)
            part.notes.append((tick, max(30, dur - 10), pitch, _velocity(92, energy, onset == 0, rng)))
        if glide and next_root != root and (bar + 1 < len(plan.chords) or plan.loop):
            # bend from the last note's pitch (the octave) towards the next root over the last 8th
            last = root + 12
            target = next_root + 12 if abs(next_root + 12 - last) <= 12 else next_root
            steps = max(-12, min(12, target - last))
            glide_start = start + length - EIGHTH
            for i in range(1, 9):
                part.bends.append((glide_start + i * EIGHTH // 8 - 1, round(8191 * steps / 12 * i / 8)))
            part.bends.append((start + length, 0))
    return part


def comp_part(plan: Plan, spec: Any, seed: int, pattern_name: str | None = None, high: bool = False) -> PartNotes:
    """Voiced chords (close voicings that move least from the previous one) in the genre's comping rhythm;
    ``high`` (pads) voices them an octave up and holds them. Strums roll the voices 12 ticks apart."""
    rng = np.random.default_rng([seed, PART_STREAMS["pad" if high else "harmony"]])
    part = PartNotes(spec.name, spec.role, spec.program)
    name = "sustained_chords" if high else (pattern_name or plan.genre.comp)
    pattern = _scaled(COMP_PATTERNS[name], _eighths(plan))
    length, tonic = bar_ticks(plan), plan.key.tonic_pc
    previous = None
    low, top = (60, 86) if high else (50, 76)
    for bar, chord in enumerate(plan.chords):
        voicing = voice(chord, tonic, previous, low, top)
        previous = voicing
        energy = plan.energy[bar]
        base = 60 if high else 80
        for index, (onset, dur, _) in enumerate(pattern):
            if name == "arpeggio":
                order = list(voicing) + list(voicing[1:-1][::-1])
                pitches: tuple[int, ...] = (order[index % len(order)],)
            else:
                pitches = voicing
            tick = bar * length + _swing(onset, plan.swing_percent)
            dur = min(dur, length - onset)
            roll = 12 if name == "strum" else 0
            ordered = pitches if index % 2 == 0 else pitches[::-1]
            for k, pitch in enumerate(ordered):
                velocity = _velocity(base - 4 * k * (name == "strum"), energy, onset == 0, rng)
                part.notes.append((tick + k * roll, max(30, dur - 8 - k * roll), pitch, velocity))
    return part


def lead_part(
    plan: Plan,
    spec: Any,
    seed: int,
    net: Any,
    lyrics: list[str] | None,
    progress: Callable[[float], None] | None = None,
) -> tuple[PartNotes, list[str]]:
    """The melody engine's constrained sampler, one melody per distinct section name (a repeated chorus sings
    the same tune), with the chords' tones required on strong beats (the bar's downbeat and, in 4/4, beat 3;
    every beat in other meters). Intro, outro and builds rest. Lyrics: one syllable per note, in order.
    Returns the part and warnings."""
    from cadenza.engines.melody.corpus import TICKS_PER_QUARTER, beat_ticks, tonic_shift
    from cadenza.engines.melody.engine import INSTRUMENT_RANGES, MODEL_RANGE
    from cadenza.engines.melody.generate import SCALES, Sampling, generate

    part = PartNotes(spec.name, "lead", spec.program)
    numerator, denominator = plan.meter
    beat = beat_ticks(numerator, denominator)
    shift = tonic_shift(plan.key.tonic_pc)
    low, high = INSTRUMENT_RANGES.get(spec.program, (60, 84))
    low, high = max(low, 57), min(high, 86)
    pitch_range = (max(low + shift, MODEL_RANGE[0]), min(high + shift, MODEL_RANGE[1]))
    scale = set(SCALES[plan.key.mode])
    scale_ticks = PPQ // TICKS_PER_QUARTER
    length = bar_ticks(plan)
    melodies: dict[str, list[tuple[int, int, int]]] = {}
    singing = [s for s in plan.sections if s.name in ("verse", "chorus", "bridge", "loop")] or plan.sections
    for number, section in enumerate(singing):
        if section.name not in melodies:
            melodies[section.name] = _melody(
                section, plan, net, seed, scale, shift, pitch_range, beat, generate, Sampling
            )
        for onset, duration, pitch in melodies[section.name]:
            tick = section.start_bar * length + onset * scale_ticks
            energy = plan.energy[min(len(plan.energy) - 1, tick // length)]
            velocity = int(np.clip(72 + 30 * energy + (8 if (onset * scale_ticks) % length == 0 else 0), 30, 120))
            part.notes.append((tick, max(30, duration * scale_ticks - 12), pitch - shift, velocity))
        if progress is not None:
            progress(100.0 * (number + 1) / len(singing))
    part.notes.sort()
    warnings: list[str] = []
    if lyrics:
        for (tick, *_), syllable in zip(part.notes, lyrics, strict=False):
            part.lyrics.append((tick, syllable))
        if len(lyrics) > len(part.notes):
            warnings.append(
                f"{len(lyrics) - len(part.notes)} of {len(lyrics)} syllables found no note and are not sung"
            )
    return part, warnings


def _melody(section: Section, plan: Plan, net, seed, scale, shift, pitch_range, beat, generate, sampling_cls):
    """One section's melody in key-normalised pitches (grid ticks of the melody model), chord tones on strong
    beats."""
    numerator, _ = plan.meter
    chords = plan.chords[section.start_bar : section.start_bar + section.bars]
    strong_every = 2 * beat if numerator == 4 else beat

    def strong(bar: int, position: int) -> frozenset[int] | None:
        if position % strong_every or bar >= len(chords):
            return None
        chord = chords[bar]
        return frozenset(pc for pc in chord.pitch_classes(0) if pc in scale) or None

    melody = generate(
        net,
        mode=plan.key.mode,
        numerator=plan.meter[0],
        denominator=plan.meter[1],
        bars=section.bars,
        pitch_range=pitch_range,
        sampling=sampling_cls(temperature=0.95, top_p=0.92, repetition_penalty=1.1),
        seed=int(np.random.default_rng([seed, PART_STREAMS["lead"], len(section.name), section.bars]).integers(2**31)),
        strong_pitch_classes=strong,
    )
    return [(n.onset, n.duration, n.pitch) for n in melody.notes]


def drum_part(
    plan: Plan, spec: Any, seed: int, model: Any, style: Any, progress: Callable[[float], None] | None = None
) -> PartNotes:
    """The drums engine's groove per section (its pattern type: intro, verse, chorus, bridge, outro; at most
    32 bars per generation), velocities scaled by the section's energy. Hits played early at the very start
    are moved to tick 0 (a loop wraps them to its end instead)."""
    from cadenza.engines.drums.arrange import Meter
    from cadenza.engines.drums.engine import compose
    from cadenza.engines.drums.pattern import note_durations
    from cadenza.engines.drums.schema import DrumsRequest

    part = PartNotes(spec.name, "drums", None)
    meter = Meter.of(*plan.meter)
    step_ticks = PPQ // 4
    length = bar_ticks(plan)
    total = plan.bars * length
    chunks = [(s, start, min(32, s.bars - start)) for s in plan.sections for start in range(0, s.bars, 32)]
    placed: list[tuple[int, int, int, int]] = []
    for index, (section, start, bars) in enumerate(chunks):
        kind = {"loop": "verse", "build": "bridge"}.get(section.name, section.name)
        request = DrumsRequest(
            producer_style=style.name, bars=bars, tempo=plan.tempo_bpm, time_signature=plan.meter, pattern_type=kind
        )
        groove = compose(
            model,
            style,
            request,
            meter,
            int(np.random.default_rng([seed, PART_STREAMS["drums"], index]).integers(2**31)),
        )
        origin = (section.start_bar + start) * length
        for hit in groove.placed:
            tick = origin + hit.bar * length + hit.step * step_ticks + round(hit.offset_steps * step_ticks)
            tick = tick % total if plan.loop else min(max(tick, 0), total - 1)
            energy = plan.energy[min(plan.bars - 1, tick // length)]
            velocity = int(np.clip(round(hit.velocity * (0.78 + 0.3 * energy)), 1, 127))
            placed.append((tick, hit.instrument, hit.pitch, velocity))
        if progress is not None:
            progress(100.0 * (index + 1) / len(chunks))
    placed.sort()
    durations = note_durations([p[0] for p in placed], [p[1] for p in placed], step_ticks=step_ticks, bar_ticks=length)
    part.notes = [
        (tick, duration, pitch, velocity)
        for (tick, _, pitch, velocity), duration in zip(placed, durations, strict=True)
    ]
    return part


def syllables(lyrics: str) -> list[str]:
    """Lyrics → syllables (Pyphen's US English hyphenation patterns, from LibreOffice's dictionaries), words'
    punctuation kept on their last syllable; the first syllable of each word after the first starts with a
    space (karaoke MIDI convention: syllables of a word join, words are separated)."""
    import pyphen

    dictionary = pyphen.Pyphen(lang="en_US")
    out: list[str] = []
    for index, word in enumerate(re.findall(r"\S+", lyrics)):
        core = re.sub(r"[^\w'-]", "", word)
        pieces = dictionary.inserted(core).split("-") if core else [word]
        pieces = [p for p in pieces if p] or [word]
        if core and word != core:
            pieces[-1] = pieces[-1] + word[word.find(core) + len(core) :]
        if index:
            pieces[0] = " " + pieces[0]
        out += pieces
    return out
