"""Request + prompt → a song plan: tempo, key, meter, form sized to the duration, chords per bar, parts.

Every value says where it came from (``interpretation``): the request's field, the prompt's words, a mood,
the genre's default, or the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cadenza.engines.base import EngineInputError
from cadenza.engines.track.config import section as track_settings
from cadenza.engines.track.genres import Genre, genres_for
from cadenza.engines.track.prompt import INSTRUMENTS, MOODS, Parsed, parse_prompt
from cadenza.engines.track.schema import SUPPORTED_METERS, TrackRequest
from cadenza.music.harmony import Chord, parse_numeral
from cadenza.music.keys import Key, parse_key

DEFAULT_GENRE = "pop ballad"
MAX_EXTRA_PARTS = 3  # beyond the genre's palette: bounds the rendering and mixing cost of one request
DEFAULT_DURATION_S = 30.0
DEFAULT_TONICS = ("C", "D", "E", "F", "G", "A", "Bb", "Eb")
LYRICS_PROGRAM = 53  # General MIDI "Voice Oohs" (0-based): the lead sings lyrics as a GM voice patch
PLAN_STREAM = 11


@dataclass(frozen=True)
class Section:
    """A part of the form: ``bars`` bars from ``start_bar``, at ``energy`` (0-1)."""

    name: str
    start_bar: int
    bars: int
    energy: float


@dataclass(frozen=True)
class PartSpec:
    """One part of the arrangement: its ``name`` (the stem's), ``role`` (drums, bass, harmony, lead, pad) and
    General MIDI ``program`` (0-based; drums: None), and the words that chose it."""

    name: str
    role: str
    program: int | None
    source: str


@dataclass
class Plan:
    genre: Genre
    tempo_bpm: float
    key: Key
    meter: tuple[int, int]
    bars: int
    duration_s: float
    loop: bool
    sections: list[Section]
    chords: list[Chord]
    energy: list[float]  # per bar
    parts: list[PartSpec]
    drum_style: str | None
    swing_percent: float
    lowpass_hz: float | None
    reverb_delta: float
    fade_out: bool  # every track but a loop ends with a fade (the final chord's release)
    interpretation: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def bar_s(self) -> float:
        return bar_seconds(self.meter, self.tempo_bpm)


def bar_seconds(meter: tuple[int, int], tempo_bpm: float) -> float:
    """Seconds per bar: ``numerator × (4 / denominator)`` quarter notes at ``tempo_bpm`` quarters per minute."""
    numerator, denominator = meter
    return numerator * 4.0 / denominator * 60.0 / tempo_bpm


def _family(mode: str) -> str:
    return "minor" if mode in ("minor", "dorian") else "major"


def _cadence(mode: str) -> str:
    """The chord before the tonic at a section's end: V7 (major and minor: the harmonic minor's dominant),
    IV7 in dorian, bVII in mixolydian (their idiomatic cadences)."""
    return {"major": "V7", "minor": "V7", "dorian": "IV7", "mixolydian": "bVII"}[mode]


def _tonic(mode: str) -> str:
    return "i" if _family(mode) == "minor" else "I"


def _allocate(template: list[tuple[str, float, float]], bars: int) -> list[tuple[str, int, float]]:
    """Bars per section of ``template`` for a song of ``bars`` bars, in proportion to the shares: body sections
    in whole phrases (2 bars; 4 from 32 bars on) by largest remainders, intro and outro at least 1 bar and
    taking the bars left over; sums to ``bars``. Under 8 bars (or a one-section template): one section, the
    most energetic body one."""
    if bars < 8 or len(template) == 1:
        name, _, energy = max(template, key=lambda s: s[2] if s[0] in ("verse", "chorus") else -1)
        return [(name, bars, energy)]
    total = sum(share for _, share, _ in template)
    raw = [share / total * bars for _, share, _ in template]
    edges = [i for i, (name, _, _) in enumerate(template) if name in ("intro", "outro")]
    body = [i for i in range(len(template)) if i not in edges]
    if not body:
        body, edges = edges, []
    sizes = [0] * len(template)
    for i in edges:
        sizes[i] = max(1, round(raw[i]))
    phrase = 4 if bars >= 32 else 2
    while phrase > 1 and (bars - sum(sizes)) // phrase < len(body):
        phrase //= 2
    left = bars - sum(sizes)
    while left < len(body) * phrase and any(sizes[i] > 1 for i in edges):  # tiny songs: edges give bars back
        sizes[max(edges, key=lambda j: sizes[j])] -= 1
        left += 1
    for k in range(left % phrase):  # the odd bars go to the edges (outro first), else to the last body section
        sizes[(edges[::-1] or body[-1:])[k % max(1, len(edges))]] += 1
    units = (bars - sum(sizes)) // phrase
    weights = [raw[i] for i in body]
    shares = [units * w / sum(weights) for w in weights]
    counts = [max(1, int(x)) for x in shares]
    while sum(counts) > units:
        counts[max(range(len(counts)), key=lambda j: counts[j] - shares[j])] -= 1
    for j in sorted(range(len(counts)), key=lambda j: counts[j] - shares[j])[: units - sum(counts)]:
        counts[j] += 1
    for i, count in zip(body, counts, strict=True):
        sizes[i] = count * phrase
    return [(name, size, energy) for (name, _, energy), size in zip(template, sizes, strict=True) if size > 0]


def resolve(request: TrackRequest, settings: Any, seed: int) -> Plan:
    """The plan of ``request``. Raises EngineInputError for an unknown genre or a prompt that cannot be
    served (a meter or key the engines cannot write)."""
    genres = genres_for(settings)
    parsed = parse_prompt(request.prompt, {name: g.words for name, g in genres.items()})
    if request.instruments is not None:
        extra = parse_prompt(" , ".join(request.instruments), {})
        if extra.unused:
            known = ", ".join(sorted(INSTRUMENTS))
            raise EngineInputError(f"unknown instrument(s) {extra.unused}; known: {known}")
        parsed.instruments = extra.instruments
    rng = np.random.default_rng([seed, PLAN_STREAM])
    said: dict[str, Any] = {}
    warnings: list[str] = []

    def note(name: str, value: Any, source: str, words: str | None = None) -> None:
        said[name] = {"value": value, "source": source, **({"words": words} if words else {})}

    # genre
    if request.genre is not None:
        if request.genre not in genres:
            raise EngineInputError(f"unknown genre {request.genre!r}; genres: {', '.join(genres)}")
        genre = genres[request.genre]
        note("genre", genre.name, "request")
    elif parsed.genre is not None:
        genre = genres[parsed.genre]
        note("genre", genre.name, "prompt", parsed.sources["genre"])
    else:
        genre = genres.get(DEFAULT_GENRE) or next(iter(genres.values()))
        note("genre", genre.name, "default (no genre named)")
    mood_effects: dict[str, Any] = {}
    for mood in parsed.moods:
        for name, value in MOODS[mood].items():
            mood_effects[name] = mood_effects.get(name, 0) + value if name != "mode" else value
            if name == "lowpass_hz":
                mood_effects[name] = min(value, mood_effects.get(name, value))
    # tempo
    low, high, default = genre.tempo_bpm
    if request.tempo is not None:
        tempo = float(request.tempo)
        note("tempo_bpm", tempo, "request")
    elif parsed.tempo_bpm is not None:
        tempo = float(parsed.tempo_bpm)
        note("tempo_bpm", tempo, "prompt", parsed.sources["tempo"])
    elif parsed.tempo_word is not None:
        tempo = float(round(low + parsed.tempo_word * (high - low)))
        note("tempo_bpm", tempo, f"prompt (in {genre.name}'s range {low:g}-{high:g})", parsed.sources["tempo"])
    else:
        tempo = float(default)
        note("tempo_bpm", tempo, f"genre default ({genre.name})")
    if not 40 <= tempo <= 240:
        raise EngineInputError(f"tempo {tempo:g} BPM is outside 40-240 BPM")
    # meter
    if request.time_signature is not None:
        meter = tuple(request.time_signature)
        note("time_signature", list(meter), "request")
    elif parsed.time_signature is not None:
        meter = parsed.time_signature
        note("time_signature", list(meter), "prompt", parsed.sources["time_signature"])
    else:
        meter = tuple(genre.meter)
        note("time_signature", list(meter), f"genre default ({genre.name})")
    if meter not in SUPPORTED_METERS:
        raise EngineInputError(
            f"time signature {meter[0]}/{meter[1]} cannot be written; use one of "
            + ", ".join(f"{n}/{d}" for n, d in SUPPORTED_METERS)
        )
    # key
    if request.key is not None:
        key = parse_key(request.key)
        note("key", key.name, "request")
    else:
        if parsed.mode is not None:
            mode, mode_source = parsed.mode, ("prompt", parsed.sources.get("key") or parsed.sources.get("mode"))
        elif "mode" in mood_effects:
            mode, mode_source = mood_effects["mode"], ("mood", parsed.sources.get("moods"))
        else:
            mode, mode_source = genre.mode, (f"genre default ({genre.name})", None)
        if parsed.key is not None:
            tonic = parsed.key.split()[0]
            key = parse_key(f"{tonic} {mode}")
            note("key", key.name, "prompt", parsed.sources["key"])
            if parsed.mode is None:
                said["key"]["mode_source"] = mode_source[0]
        else:
            tonic = str(rng.choice(DEFAULT_TONICS))
            key = parse_key(f"{tonic} {mode}")
            note("key", key.name, f"tonic from the seed, mode: {mode_source[0]}", mode_source[1])
    # duration and bars
    max_s = track_settings(settings).max_duration_s
    if request.duration_s is not None:
        duration = float(request.duration_s)
        note("duration_s", duration, "request")
    elif parsed.duration_s is not None:
        duration = float(parsed.duration_s)
        note("duration_s", duration, "prompt", parsed.sources["duration_s"])
        if not 5 <= duration <= max_s:
            clamped = min(max(duration, 5.0), max_s)
            warnings.append(f"the prompt asks for {duration:g} s; tracks last 5-{max_s:g} s, so {clamped:g} s")
            duration = clamped
    else:
        duration = DEFAULT_DURATION_S
        note("duration_s", duration, "default")
    if duration > max_s:
        raise EngineInputError(f"duration_s {duration:g} is over this server's limit of {max_s:g} s")
    loop = request.loop or "loop" in parsed.structure
    if loop and not request.loop:
        note("loop", True, "prompt", parsed.sources["structure:loop"])
    bar_s = bar_seconds(meter, tempo)
    if loop:
        bars = max(1, round(duration / bar_s))
        if abs(bars * bar_s - duration) > 0.005:
            warnings.append(
                f"a seamless loop is whole bars long: {bars} bars of {meter[0]}/{meter[1]} at {tempo:g} BPM last "
                f"{bars * bar_s:.3f} s, not {duration:g} s"
            )
        duration = bars * bar_s
    else:
        bars = max(1, math.floor(duration / bar_s + 1e-6))
    # form
    template = [tuple(s) for s in genre.sections]
    if loop:
        body = [s for s in template if s[0] in ("verse", "chorus")] or template
        allocation = [("loop", bars, max(s[2] for s in body))]
    else:
        if "no_intro" in parsed.structure:
            template = [s for s in template if s[0] != "intro"] or template
        if "no_outro" in parsed.structure:
            template = [s for s in template if s[0] != "outro"] or template
        allocation = _allocate(template, bars)
        if "build" in parsed.structure:
            allocation = _with_build(allocation)
    energy_shift = float(mood_effects.get("energy", 0.0))
    sections, start = [], 0
    for name, size, energy in allocation:
        sections.append(Section(name, start, size, float(np.clip(energy + energy_shift, 0.1, 1.0))))
        start += size
    energy = _energy_curve(sections)
    chords = _chords(genre, key, sections, rng, loop)
    parts = _parts(genre, parsed, request, warnings)
    drum_style = genre.drum_style if "drums" not in parsed.without else None
    if drum_style is None and any(p.role == "drums" for p in parts):
        drum_style = "Questlove"
    parts = [p for p in parts if p.role != "drums" or drum_style is not None]
    note("parts", [{"name": p.name, "role": p.role, "program": p.program} for p in parts], "genre palette and prompt")
    if drum_style:
        note("drum_style", drum_style, f"genre ({genre.name})")
    if parsed.moods:
        note("moods", parsed.moods, "prompt", parsed.sources["moods"])
    structure = [h for h in parsed.structure if h != "loop"]
    if structure:
        note("structure", structure, "prompt", ", ".join(parsed.sources[f"structure:{h}"] for h in structure))
    if loop and "fade" in parsed.structure:
        warnings.append("a seamless loop does not fade out: 'fade out' is not applied")
    said["unused_words"] = parsed.unused
    said["filler_words"] = parsed.filler
    if parsed.unused:
        warnings.append(f"words not understood (not used): {', '.join(parsed.unused)}")
    return Plan(
        genre=genre,
        tempo_bpm=tempo,
        key=key,
        meter=meter,  # type: ignore[arg-type]
        bars=bars,
        duration_s=duration,
        loop=loop,
        sections=sections,
        chords=chords,
        energy=energy,
        parts=parts,
        drum_style=drum_style,
        swing_percent=genre.swing_percent,
        lowpass_hz=mood_effects.get("lowpass_hz"),
        reverb_delta=float(mood_effects.get("reverb", 0.0)),
        fade_out=not loop,
        interpretation=said,
        warnings=warnings,
    )


def _with_build(allocation: list[tuple[str, int, float]]) -> list[tuple[str, int, float]]:
    """A 'build' of 2-4 bars (energy rising into it) taken from the end of the section before the first chorus."""
    for index, (name, _size, _energy) in enumerate(allocation):
        if name == "chorus" and index > 0:
            before, size, energy = allocation[index - 1]
            take = min(4, size // 2)
            if take >= 1:
                build = ("build", take, (energy + allocation[index][2]) / 2)
                return [*allocation[: index - 1], (before, size - take, energy), build, *allocation[index:]]
    return allocation


def _energy_curve(sections: list[Section]) -> list[float]:
    """Energy per bar: each section's, rising linearly through a build into the next section."""
    curve: list[float] = []
    for index, section in enumerate(sections):
        if section.name == "build" and index + 1 < len(sections):
            start, end = sections[index - 1].energy if index else section.energy, sections[index + 1].energy
            curve += [start + (end - start) * (b + 1) / section.bars for b in range(section.bars)]
        else:
            curve += [section.energy] * section.bars
    return curve


def _chords(genre: Genre, key: Key, sections: list[Section], rng: np.random.Generator, loop: bool) -> list[Chord]:
    """One chord per bar: each section name keeps one progression of the genre (cycled); the first bar is the
    tonic; a section's last bar is the cadence chord (the dominant leading into what follows); the song ends
    on the tonic (a loop ends on the cadence chord, which leads back to its first bar's tonic)."""
    progressions = genre.progressions[_family(key.mode)]
    chosen: dict[str, list[str]] = {}
    numerals: list[str] = []
    for section in sections:
        if section.name not in chosen:
            chosen[section.name] = progressions[int(rng.integers(len(progressions)))]
        progression = chosen[section.name]
        bars = [progression[b % len(progression)] for b in range(section.bars)]
        if section.bars >= 2:
            bars[-1] = _cadence(key.mode)
        numerals += bars
    if not loop:
        numerals[-2:] = [_cadence(key.mode), _tonic(key.mode)][-len(numerals[-2:]) :]
    elif len(numerals) >= 2:
        numerals[-1] = _cadence(key.mode)
    numerals[0] = _tonic(key.mode)  # the first downbeat is the tonic, whatever the length
    return [parse_numeral(n) for n in numerals]


def _parts(genre: Genre, parsed: Parsed, request: TrackRequest, warnings: list[str]) -> list[PartSpec]:
    """The genre's palette, with the prompt's instruments in their roles (a second instrument of a role taken
    becomes an extra part named after it) and without the parts the prompt removes."""
    slots: dict[str, PartSpec] = {"drums": PartSpec("drums", "drums", None, "genre")}
    for role in ("bass", "harmony", "lead", "pad"):
        if role in genre.palette:
            slots[role] = PartSpec(role, role, genre.palette[role], f"genre palette ({genre.name})")
    taken: set[str] = set()
    extras: list[PartSpec] = []
    dropped: list[str] = []
    for word, role, program in parsed.instruments:
        if role not in taken:
            slots[role] = PartSpec(role, role, program, f"prompt: {word}")
            taken.add(role)
        elif len(extras) >= MAX_EXTRA_PARTS:
            dropped.append(word)
        else:
            name = "".join(ch if ch.isalnum() else "-" for ch in word).strip("-") or role
            while name in slots or any(e.name == name for e in extras):
                name += "2"
            extras.append(PartSpec(name, "pad" if role in ("pad", "harmony") else role, program, f"prompt: {word}"))
    if request.lyrics and "lead" not in taken and "lead" not in parsed.without:
        slots["lead"] = PartSpec("lead", "lead", LYRICS_PROGRAM, "lyrics (General MIDI Voice Oohs)")
    for role in parsed.without:
        slots.pop(role, None)
    if dropped:
        warnings.append(
            f"at most {MAX_EXTRA_PARTS} extra parts: {', '.join(dropped)} not added (each part is rendered and mixed)"
        )
    return list(slots.values()) + extras
