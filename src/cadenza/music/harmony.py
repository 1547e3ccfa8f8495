"""Chords from Roman numerals, and close voicings with smooth voice leading.

Numerals are read as musicians write them relative to the key's tonic, on the major scale's degrees with
explicit accidentals for the others (``bIII``, ``bVI``, ``bVII`` in minor; ``bII`` the Neapolitan): upper case
is a major triad, lower case minor, ``°``/``dim`` diminished, ``+``/``aug`` augmented; suffixes ``7`` (a
dominant seventh on an upper-case numeral, a minor seventh on a lower-case one), ``maj7`` and ``m7b5``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEGREE_SEMITONES = {"I": 0, "II": 2, "III": 4, "IV": 5, "V": 7, "VI": 9, "VII": 11}
_NUMERAL = re.compile(r"^(b|#)?(VII|VI|IV|V|III|II|I|vii|vi|iv|v|iii|ii|i)(°|dim|\+|aug)?(maj7|m7b5|7)?$")


@dataclass(frozen=True)
class Chord:
    """A chord relative to the tonic: ``root`` in semitones above it (0-11) and ``intervals`` above the root."""

    numeral: str
    root: int
    intervals: tuple[int, ...]

    def pitch_classes(self, tonic_pc: int = 0) -> frozenset[int]:
        """Pitch classes (0 = C) of the chord in a key whose tonic is ``tonic_pc``."""
        return frozenset((tonic_pc + self.root + i) % 12 for i in self.intervals)


def parse_numeral(text: str) -> Chord:
    """``"bVImaj7"`` → Chord. Raises ValueError saying what is accepted."""
    match = _NUMERAL.match(text.strip())
    if match is None:
        raise ValueError(
            f"chord {text!r} is not a Roman numeral: write I-VII (major) or i-vii (minor) with an optional b/# "
            "before it and °, +, 7, maj7 or m7b5 after it, e.g. 'bVImaj7', 'ii7', 'V7'"
        )
    accidental, numeral, quality, seventh = match.groups()
    root = (DEGREE_SEMITONES[numeral.upper()] + {"b": -1, "#": 1, None: 0}[accidental]) % 12
    if quality in ("°", "dim") or seventh == "m7b5":
        triad = (0, 3, 6)
    elif quality in ("+", "aug"):
        triad = (0, 4, 8)
    else:
        triad = (0, 4, 7) if numeral.isupper() else (0, 3, 7)
    extra: tuple[int, ...] = ()
    if seventh == "maj7":
        extra = (11,)
    elif seventh in ("7", "m7b5"):
        extra = (9,) if quality in ("°", "dim") and seventh == "7" else (10,)
    return Chord(text.strip(), root, triad + extra)


def voice(
    chord: Chord, tonic_pc: int, previous: tuple[int, ...] | None, low: int = 52, high: int = 76
) -> tuple[int, ...]:
    """A close voicing (MIDI pitches, ascending) of ``chord`` within [low, high] that moves least from
    ``previous`` (sum of absolute semitone motion between sorted voices); without one, the inversion whose
    centre is nearest the middle of the range."""
    pcs = sorted({(tonic_pc + chord.root + i) % 12 for i in chord.intervals})
    candidates = []
    for base in range(low, high - 5):
        if base % 12 not in pcs:
            continue
        voicing = [base]
        for _ in range(len(pcs) - 1):
            nxt = voicing[-1] + 1
            while nxt % 12 not in pcs or nxt % 12 in {p % 12 for p in voicing}:
                nxt += 1
            voicing.append(nxt)
        if voicing[-1] <= high:
            candidates.append(tuple(voicing))
    if not candidates:
        raise ValueError(f"no voicing of {chord.numeral} fits {low}-{high}")
    if previous:

        def motion(v: tuple[int, ...]) -> float:
            size = min(len(v), len(previous))
            return sum(abs(a - b) for a, b in zip(v[:size], previous[:size], strict=True)) + abs(
                sum(v) / len(v) - sum(previous) / len(previous)
            )

        return min(candidates, key=motion)
    middle = (low + high) / 2
    return min(candidates, key=lambda v: abs(sum(v) / len(v) - middle))
