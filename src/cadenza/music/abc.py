"""ABC notation (abc standard 2.1, https://abcnotation.com/wiki/abc:standard:v2.1) of a monophonic melody.

Notes are on a grid of ``ticks_per_quarter``; the unit note length ``L:`` is a 16th (1/16), so every
duration of a 16th grid is an integer multiple; lengths off that grid (a seed's triplets) are rounded to a
128th, as abc2midi reads only power-of-two fractions. Pitches are spelled from the key (``keys.Key.spelling``): scale
notes carry no accidental (the key signature does), others get ``^``/``_``/``=``, and accidentals last to
the bar line as the standard says. Rests fill gaps; a note crossing a bar line is split and tied.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from cadenza.music.keys import LETTER_PC, Key


def abc_pitch(pitch: int, key: Key, bar_accidentals: dict[str, int]) -> str:
    """ABC spelling of MIDI ``pitch`` (middle C = ``C``) in ``key``; ``bar_accidentals`` (letter+octave →
    alteration written in this bar) is updated."""
    pc = pitch % 12
    spelling = key.spelling()
    if pc in spelling:
        name = spelling[pc]
    else:  # out of scale: a natural letter if it is one (=), else sharpened in sharp keys, flattened in flat ones
        naturals = {v: k for k, v in LETTER_PC.items()}
        flat_key = any("b" in n for n in spelling.values())
        if pc in naturals:
            name = naturals[pc]
        elif flat_key:
            name = naturals[(pc + 1) % 12] + "b"
        else:
            name = naturals[(pc - 1) % 12] + "#"
    letter, alteration = name[0], name.count("#") - name.count("b")
    octave = (pitch - alteration - LETTER_PC[letter]) // 12 - 5  # C4 (MIDI 60) is ABC "C"
    signature = {n[0]: n.count("#") - n.count("b") for n in spelling.values()}.get(letter, 0)
    slot = f"{letter}{octave}"
    current = bar_accidentals.get(slot, signature)
    prefix = ""
    if alteration != current:
        prefix = {2: "^^", 1: "^", 0: "=", -1: "_", -2: "__"}[alteration]
        bar_accidentals[slot] = alteration
    text = letter if octave <= 0 else letter.lower()
    if octave < 0:
        text += "," * -octave
    elif octave > 1:
        text += "'" * (octave - 1)
    return prefix + text


def _length(ticks: int, unit: int) -> str:
    """ABC length of ``ticks`` in units of ``unit``; abc2midi needs power-of-two denominators, so lengths off
    the 16th grid (triplets of a seed) are rounded to a 128th (1/8 of the unit)."""
    value = Fraction(ticks, unit)
    if value.denominator not in (1, 2, 4, 8):
        value = Fraction(max(1, round(value * 8)), 8)
    if value == 1:
        return ""
    if value.denominator == 1:
        return str(value.numerator)
    if value.numerator == 1:
        return "/" * 1 if value.denominator == 2 else f"/{value.denominator}"
    return f"{value.numerator}/{value.denominator}"


def melody_abc(
    notes: Sequence[tuple[int, int, int]],
    *,
    key: Key,
    numerator: int,
    denominator: int,
    tempo_bpm: float,
    ticks_per_quarter: int,
    title: str = "Cadenza melody",
    index: int = 1,
    total_ticks: int | None = None,
) -> str:
    """ABC text of (onset, duration, pitch) notes (ticks, MIDI pitch), bars of ``numerator/denominator``."""
    unit = ticks_per_quarter // 4  # L:1/16
    bar = numerator * 4 * ticks_per_quarter // denominator
    end = total_ticks or max((o + d for o, d, _ in notes), default=bar)
    events: list[tuple[int, int, int | None]] = []  # onset, duration, pitch (None = rest)
    cursor = 0
    for onset, duration, pitch in sorted(notes):
        if onset > cursor:
            events.append((cursor, onset - cursor, None))
        events.append((onset, duration, pitch))
        cursor = onset + duration
    if cursor < end:
        events.append((cursor, end - cursor, None))
    body: list[str] = []
    accidentals: dict[str, int] = {}
    line_bars = 0
    for onset, duration, pitch in events:
        while duration > 0:
            bar_end = (onset // bar + 1) * bar
            piece = min(duration, bar_end - onset)
            tied = piece < duration and pitch is not None
            body.append(_token(pitch, piece, unit, key, accidentals) + ("-" if tied else ""))
            onset += piece
            duration -= piece
            if onset % bar == 0:
                line_bars += 1
                accidentals.clear()
                body.append(" |" + ("\n" if line_bars % 4 == 0 else " "))
    text = "".join(body).rstrip(" |\n") + " |]"
    header = [
        f"X:{index}",
        f"T:{title}",
        f"M:{numerator}/{denominator}",
        "L:1/16",
        f"Q:1/4={round(tempo_bpm)}",
        f"K:{key.abc()}",
    ]
    return "\n".join(header) + "\n" + text + "\n"


def _token(pitch: int | None, ticks: int, unit: int, key: Key, accidentals: dict[str, int]) -> str:
    name = "z" if pitch is None else abc_pitch(pitch, key, accidentals)
    return name + _length(ticks, unit)
