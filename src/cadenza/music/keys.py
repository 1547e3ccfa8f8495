"""Keys and modes: parsing names ("D major", "E minor", "A dorian", "F#m"), spelling scales, and estimating a
melody's key with the Krumhansl–Kessler profiles.

Krumhansl & Kessler (1982), "Tracing the dynamic changes in perceived tonal organization in a spatial
representation of musical keys", Psychological Review 89(4): probe-tone ratings of the 12 pitch classes in
C major and C minor; Krumhansl's key-finding algorithm correlates a melody's duration-weighted pitch-class
distribution with the 24 rotated profiles (Krumhansl 1990, *Cognitive Foundations of Musical Pitch*).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
#: The major scale degree a mode's tonic sits on (its relative major's key signature).
MODE_DEGREE = {"major": 0, "minor": 9, "dorian": 2, "mixolydian": 7}
LETTERS = "CDEFGAB"
LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_MODE_WORDS = {
    "": "major", "maj": "major", "major": "major", "ionian": "major",
    "m": "minor", "min": "minor", "minor": "minor", "aeolian": "minor",
    "dor": "dorian", "dorian": "dorian", "mix": "mixolydian", "mixolydian": "mixolydian",
}  # fmt: skip


@dataclass(frozen=True)
class Key:
    """A tonic spelled as a letter and accidental (``"F#"``), its pitch class, and a mode of :data:`MODES`."""

    tonic: str
    mode: str

    @property
    def tonic_pc(self) -> int:
        return (LETTER_PC[self.tonic[0]] + self.tonic.count("#") - self.tonic.count("b")) % 12

    @property
    def name(self) -> str:
        return f"{self.tonic} {self.mode}"

    def scale_pcs(self) -> list[int]:
        return [(self.tonic_pc + step) % 12 for step in MODES[self.mode]]

    def spelling(self) -> dict[int, str]:
        """Pitch class → note name of the seven scale degrees (one letter each, with its accidental)."""
        start = LETTERS.index(self.tonic[0])
        names = {}
        for degree, step in enumerate(MODES[self.mode]):
            letter = LETTERS[(start + degree) % 7]
            pc = (self.tonic_pc + step) % 12
            diff = (pc - LETTER_PC[letter] + 6) % 12 - 6
            names[pc] = letter + ("#" * diff if diff > 0 else "b" * -diff)
        return names

    def abc(self) -> str:
        """The ABC ``K:`` value (``D``, ``Em``, ``ADor``, ``GMix``)."""
        return self.tonic + {"major": "", "minor": "m", "dorian": "Dor", "mixolydian": "Mix"}[self.mode]


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" for c in word)


KEY_PATTERN = (
    "^[ \t]*([A-Ga-g])[ \t]*([#♯b♭]?)[ \t]*("
    + "|".join(_any_case(w) for w in sorted(_MODE_WORDS, key=len, reverse=True) if w)
    + ")?[ \t]*$"
)
"""The key names :func:`parse_key` reads, as a regular expression that means the same in Python and in
ECMA-262 (JSON Schema's ``pattern``): request schemas declare it, so what a client sends by the schema is read."""
_KEY_RE = re.compile(KEY_PATTERN)


def parse_key(text: str) -> Key:
    """``"D major"``, ``"e minor"``, ``"A dorian"``, ``"F#m"``, ``"Bb"`` (:data:`KEY_PATTERN`) → Key. Raises
    ValueError saying what is accepted."""
    match = _KEY_RE.fullmatch(text or "")
    mode = _MODE_WORDS.get((match.group(3) or "").lower()) if match else None
    if match is None or mode is None:
        raise ValueError(
            f"key {text!r} is not understood: use a tonic A–G with an optional # or b and a mode "
            f"({', '.join(MODES)}), e.g. 'D major', 'E minor', 'A dorian', 'F#m'"
        )
    accidental = {"♯": "#", "♭": "b"}.get(match.group(2), match.group(2))
    return Key(match.group(1).upper() + accidental, mode)


def estimate_key(notes: Iterable[tuple[int, float]]) -> tuple[Key, float]:
    """Krumhansl–Kessler estimate of (pitch, duration) notes: the best of 24 major/minor keys and its
    correlation. Raises ValueError for no notes."""
    histogram = np.zeros(12)
    for pitch, duration in notes:
        histogram[int(pitch) % 12] += float(duration)
    if histogram.sum() <= 0:
        raise ValueError("no notes to estimate a key from")
    best: tuple[float, int, str] | None = None
    for tonic in range(12):
        for mode, profile in (("major", KK_MAJOR), ("minor", KK_MINOR)):
            r = float(np.corrcoef(histogram, np.roll(profile, tonic))[0, 1])
            if best is None or r > best[0]:
                best = (r, tonic, mode)
    assert best is not None
    r, tonic, mode = best
    return Key(preferred_name(tonic, mode), mode), r


def preferred_name(pc: int, mode: str) -> str:
    """The usual spelling of a tonic pitch class in a mode (fewest accidentals in the key signature)."""
    candidates = [f"{letter}{acc}" for letter in LETTERS for acc in ("", "#", "b")]
    fitting = [c for c in candidates if Key(c, mode).tonic_pc == pc]
    return min(fitting, key=lambda c: (signature_size(Key(c, mode)), len(c)))


def signature_size(key: Key) -> int:
    """Number of sharps or flats in the key signature."""
    return sum(len(name) - 1 for name in key.spelling().values())


MIDI_KEY_NAMES = frozenset(
    [
        "C",
        "G",
        "D",
        "A",
        "E",
        "B",
        "F#",
        "C#",
        "F",
        "Bb",
        "Eb",
        "Ab",
        "Db",
        "Gb",
        "Cb",
        "Am",
        "Em",
        "Bm",
        "F#m",
        "C#m",
        "G#m",
        "D#m",
        "A#m",
        "Dm",
        "Gm",
        "Cm",
        "Fm",
        "Bbm",
        "Ebm",
        "Abm",
    ]
)
"""Key signatures a Standard MIDI File's key_signature meta event can state (mido's names)."""


def midi_key_signature(key: Key) -> str | None:
    """The SMF key signature of ``key``: its own for major and minor, its relative major's for the other modes
    (D dorian → C); None if it has no standard signature (e.g. G# major)."""
    if key.mode == "minor":
        name = key.tonic + "m"
    elif key.mode == "major":
        name = key.tonic
    else:
        name = preferred_name((key.tonic_pc - MODE_DEGREE[key.mode]) % 12, "major")
    return name if name in MIDI_KEY_NAMES else None
