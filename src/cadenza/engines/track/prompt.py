"""English prompt → what the user asked for, with the words each value came from.

Rules, not a model: every value the parser takes names its words, and words it does not use are reported,
never silently dropped (``Parsed.unused``; common function words are listed apart as ``filler``).
Explicit request fields override the text (``plan.resolve``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cadenza.music.keys import parse_key

NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "forty-five": 45, "fifty": 50,
    "sixty": 60, "ninety": 90, "half": 0.5,
}  # fmt: skip
TEMPO_WORDS = {
    "very slow": 0.0, "slow": 0.15, "laid-back": 0.3, "laid back": 0.3, "relaxed": 0.3, "mid-tempo": 0.5,
    "midtempo": 0.5, "medium tempo": 0.5, "uptempo": 0.8, "up-tempo": 0.8, "fast": 0.85, "very fast": 1.0,
}  # fmt: skip
METER_WORDS = {"waltz": (3, 4), "triple meter": (3, 4), "compound": (6, 8), "jig": (6, 8), "shuffle": (12, 8)}
#: Instrument words → (role, General MIDI program, 0-based).
INSTRUMENTS: dict[str, tuple[str, int]] = {
    "rhodes": ("harmony", 4), "electric piano": ("harmony", 4), "wurlitzer": ("harmony", 4), "keys": ("harmony", 4),
    "piano": ("harmony", 0), "grand piano": ("harmony", 0), "organ": ("harmony", 16), "hammond": ("harmony", 16),
    "acoustic guitar": ("harmony", 25), "nylon guitar": ("harmony", 24), "electric guitar": ("harmony", 27),
    "clean guitar": ("harmony", 27), "distorted guitar": ("harmony", 30), "guitar": ("harmony", 25),
    "vibraphone": ("lead", 11), "vibes": ("lead", 11), "marimba": ("lead", 12), "music box": ("lead", 10),
    "bells": ("lead", 14), "glockenspiel": ("lead", 9), "flute": ("lead", 73), "sax": ("lead", 65),
    "saxophone": ("lead", 65), "alto sax": ("lead", 65), "tenor sax": ("lead", 66), "trumpet": ("lead", 56),
    "horns": ("lead", 61), "brass": ("lead", 61), "violin": ("lead", 40), "fiddle": ("lead", 40),
    "cello": ("lead", 42), "clarinet": ("lead", 71), "harmonica": ("lead", 22), "accordion": ("lead", 21),
    "synth lead": ("lead", 81), "lead synth": ("lead", 81), "whistle": ("lead", 78), "harp": ("lead", 46),
    "strings": ("pad", 48), "string section": ("pad", 48), "choir": ("pad", 52), "pad": ("pad", 89),
    "pads": ("pad", 89), "synth pad": ("pad", 89), "warm pad": ("pad", 89),
    "808": ("bass", 38), "808s": ("bass", 38), "sub bass": ("bass", 38), "synth bass": ("bass", 38),
    "upright bass": ("bass", 32), "double bass": ("bass", 32), "acoustic bass": ("bass", 32),
    "bass guitar": ("bass", 33), "electric bass": ("bass", 33), "slap bass": ("bass", 36), "fretless": ("bass", 35),
}  # fmt: skip
PART_WORDS = {"drums": "drums", "beat": "drums", "percussion": "drums", "bass": "bass", "melody": "lead",
              "lead": "lead", "chords": "harmony", "pad": "pad", "pads": "pad"}  # fmt: skip
MOODS: dict[str, dict[str, Any]] = {
    "dark": {"mode": "minor", "energy": 0.0}, "sad": {"mode": "minor", "energy": -0.1},
    "melancholic": {"mode": "minor", "energy": -0.1}, "moody": {"mode": "minor"}, "gloomy": {"mode": "minor"},
    "happy": {"mode": "major", "energy": 0.05}, "bright": {"mode": "major"}, "uplifting": {"mode": "major"},
    "sunny": {"mode": "major"}, "joyful": {"mode": "major", "energy": 0.05}, "hopeful": {"mode": "major"},
    "chill": {"energy": -0.1}, "calm": {"energy": -0.15}, "mellow": {"energy": -0.1}, "relaxing": {"energy": -0.15},
    "dreamy": {"energy": -0.1, "reverb": 0.15}, "dusty": {"lowpass_hz": 7000}, "vintage": {"lowpass_hz": 8000},
    "warm": {"lowpass_hz": 9000}, "lo-fi": {"lowpass_hz": 7000}, "energetic": {"energy": 0.15},
    "aggressive": {"energy": 0.2}, "intense": {"energy": 0.15}, "epic": {"energy": 0.1, "reverb": 0.1},
    "groovy": {}, "smooth": {"energy": -0.05}, "funky": {}, "soulful": {}, "jazzy": {}, "cinematic": {"reverb": 0.1},
    "spacious": {"reverb": 0.15}, "dry": {"reverb": -0.5}, "driving": {"energy": 0.1}, "heavy": {"energy": 0.1},
    "gentle": {"energy": -0.15}, "soft": {"energy": -0.15}, "nostalgic": {}, "late night": {"energy": -0.05},
}  # fmt: skip
STRUCTURE = {
    "loopable": "loop", "loop": "loop", "seamless loop": "loop", "looping": "loop",
    "with a build": "build", "build-up": "build", "buildup": "build", "build up": "build", "a build": "build",
    "fade out": "fade", "fade-out": "fade", "no intro": "no_intro", "no outro": "no_outro",
}  # fmt: skip
FILLER = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "with",
        "in",
        "of",
        "for",
        "some",
        "to",
        "on",
        "at",
        "by",
        "my",
        "me",
        "i",
        "want",
        "make",
        "please",
        "like",
        "feel",
        "vibe",
        "vibes",
        "style",
        "song",
        "track",
        "tune",
        "music",
        "beat",
        "that",
        "this",
        "it",
        "is",
        "about",
        "around",
        "approximately",
        "over",
        "plus",
        "into",
    ]
)
_WORD = re.compile(r"[a-z0-9#♯♭&'+/:.-]+")


@dataclass
class Parsed:
    """What the prompt said: each value with the words it came from (``sources[field]``)."""

    tempo_bpm: float | None = None
    tempo_word: float | None = None  # a 0-1 position in the genre's tempo range ("slow", "uptempo")
    key: str | None = None
    mode: str | None = None
    time_signature: tuple[int, int] | None = None
    duration_s: float | None = None
    genre: str | None = None
    instruments: list[tuple[str, str, int]] = field(default_factory=list)  # (word, role, program)
    without: list[str] = field(default_factory=list)  # parts: "drums", "bass", …
    moods: list[str] = field(default_factory=list)
    structure: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)
    filler: list[str] = field(default_factory=list)


class _Text:
    """The lower-cased prompt with the spans already used blanked out."""

    def __init__(self, prompt: str) -> None:
        self.text = " " + prompt.lower().replace("\u2019", "'") + " "
        self.used = [False] * len(self.text)

    def take(self, pattern: str) -> re.Match[str] | None:
        """The first match of ``pattern`` (as whole words) in text not used yet; marks it used."""
        for match in re.finditer(rf"(?<![\w#]){pattern}(?![\w#])", self.text):
            if not any(self.used[match.start() : match.end()]):
                self.used[match.start() : match.end()] = [True] * (match.end() - match.start())
                return match
        return None

    def rest(self) -> list[str]:
        chars = [" " if used else ch for ch, used in zip(self.text, self.used, strict=True)]
        return [w.strip(".,;:!?'\"()") for w in _WORD.findall("".join(chars)) if w.strip(".,;:!?'\"()-")]


def _number(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return NUMBER_WORDS.get(text)


def _phrases(words: list[str]) -> list[str]:
    """Longest first, so 'electric piano' wins over 'piano'."""
    return sorted(words, key=len, reverse=True)


def parse_prompt(prompt: str, genre_words: dict[str, list[str]]) -> Parsed:
    """Read ``prompt`` (English). ``genre_words``: genre name → its words (from the catalogue)."""
    text, out = _Text(prompt), Parsed()
    number = r"(\d+(?:\.\d+)?|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + ")"

    # removed parts, genre and instruments first: their words ("90s hip hop", "808s") are not durations
    # "no drums", "without bass"
    parts = "|".join(_phrases(list(PART_WORDS)))
    while m := text.take(rf"(?:no|without|minus)\s+({parts})"):
        out.without.append(PART_WORDS[m.group(1)])
        out.sources.setdefault("without", "")
        out.sources["without"] = (out.sources["without"] + ", " + m.group(0).strip()).strip(", ")
    # genre (longest phrase first across all genres)
    phrases = [(w.lower(), name) for name, words in genre_words.items() for w in [name, *words]]
    for phrase, name in sorted(phrases, key=lambda p: len(p[0]), reverse=True):
        if m := text.take(re.escape(phrase)):
            out.genre, out.sources["genre"] = name, m.group(0).strip()
            for other, owner in phrases:  # "ambient drone": every word of the genre is used
                if owner == name and (more := text.take(re.escape(other))):
                    out.sources["genre"] += ", " + more.group(0).strip()
            break
    for phrase, role_program in sorted(INSTRUMENTS.items(), key=lambda p: len(p[0]), reverse=True):
        while m := text.take(re.escape(phrase)):
            out.instruments.append((m.group(0).strip(), *role_program))
    if (m := text.take(r"(\d{2,3}(?:\.\d+)?)\s*(?:bpm|beats per minute|beats/min)")) or (
        m := text.take(r"(?:tempo|at)\s+(\d{2,3}(?:\.\d+)?)")
    ):
        out.tempo_bpm, out.sources["tempo"] = float(m.group(1)), m.group(0).strip()
    # durations
    if m := text.take(r"(\d{1,2}):(\d{2})(?:\s*(?:min|minutes?|long))?"):
        out.duration_s, out.sources["duration_s"] = int(m.group(1)) * 60 + int(m.group(2)), m.group(0).strip()
    elif m := text.take(number + r"\s*(?:and a half\s+)?(?:minutes?|mins?|m)\b(?:\s+long)?"):
        value = _number(m.group(1)) or 0
        value += 0.5 if "and a half" in m.group(0) else 0
        out.duration_s, out.sources["duration_s"] = value * 60, m.group(0).strip()
    elif m := text.take(number + r"\s*(?:seconds?|secs?|s)\b(?:\s+long)?"):
        out.duration_s, out.sources["duration_s"] = _number(m.group(1)), m.group(0).strip()
    if out.tempo_bpm is None:
        for phrase in _phrases(list(TEMPO_WORDS)):
            if m := text.take(re.escape(phrase)):
                out.tempo_word, out.sources["tempo"] = TEMPO_WORDS[phrase], m.group(0).strip()
                break
    # meter
    if m := text.take(r"(\d{1,2})\s*/\s*(\d{1,2})(?:\s*time)?"):
        out.time_signature, out.sources["time_signature"] = (int(m.group(1)), int(m.group(2))), m.group(0).strip()
    else:
        for phrase, meter in METER_WORDS.items():
            if m := text.take(re.escape(phrase)):
                out.time_signature, out.sources["time_signature"] = meter, m.group(0).strip()
                break
    for phrase, meter in METER_WORDS.items():  # "a waltz in 3/4": the word agrees with the number, both used
        if meter == out.time_signature and (m := text.take(re.escape(phrase))):
            out.sources["time_signature"] += ", " + m.group(0).strip()
    # key: "A minor", "in F#", "key of Eb", "C# dorian", "Bbm"
    mode_words = r"(major|minor|maj|min|dorian|mixolydian|aeolian|ionian|m)"
    if m := text.take(
        r"(?:in\s+(?:the\s+key\s+of\s+)?|key\s+of\s+)?([a-g])\s*(#|♯|b|♭|\s+sharp|\s+flat)?\s*" + mode_words
    ):
        accidental = (m.group(2) or "").strip().replace("sharp", "#").replace("flat", "b").replace("♯", "#")
        accidental = accidental.replace("♭", "b")
        key = parse_key(f"{m.group(1).upper()}{accidental} {m.group(3)}")
        out.key, out.mode, out.sources["key"] = key.name, key.mode, m.group(0).strip()
    elif m := text.take(r"(?:in|key\s+of)\s+([a-g])\s*(#|♯|b|♭)?"):
        accidental = (m.group(2) or "").replace("♯", "#").replace("♭", "b")
        out.key, out.sources["key"] = parse_key(f"{m.group(1).upper()}{accidental} major").tonic, m.group(0).strip()
    if out.mode is None:
        for word, mode in (("dorian", "dorian"), ("mixolydian", "mixolydian"), ("minor key", "minor"),
                           ("major key", "major"), ("minor", "minor"), ("major", "major")):  # fmt: skip
            if m := text.take(word):
                out.mode, out.sources["mode"] = mode, m.group(0).strip()
                break
    for phrase, hint in sorted(STRUCTURE.items(), key=lambda p: len(p[0]), reverse=True):
        if (m := text.take(re.escape(phrase))) and hint not in out.structure:
            out.structure.append(hint)
            out.sources[f"structure:{hint}"] = m.group(0).strip()
    for phrase in _phrases(list(MOODS)):
        if text.take(re.escape(phrase)):
            out.moods.append(phrase)
    if out.moods:
        out.sources["moods"] = ", ".join(out.moods)
    for word in text.rest():
        (out.filler if word in FILLER else out.unused).append(word)
    return out
