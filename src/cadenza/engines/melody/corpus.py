"""Folk-tune corpus: ABC files → monophonic, key-normalised tunes on a fixed grid, split by tune.

Sources (both public domain, in ``music21``'s corpus): O'Neill's *Music of Ireland* (1850, folder
``oneills1850``) and Ryan's *Mammoth Collection* (1883, folder ``ryansMammoth``). ``essenFolksong`` carries a
non-commercial licence and is never read for shipped weights. The folders are always arguments.

Each ``X:`` tune of a multi-tune ``.abc`` file is parsed by symusic (its bundled abc2midi: seconds for the
whole corpus; music21's ABC parser takes many minutes). The header gives the key and mode (``K:``, e.g.
``D``, ``Em``, ``ADor``, ``GMix``) and the meter (``M:``). Notes are reduced to the top line (chords in the
accompaniment letters are not notes here), onsets and durations quantised to ``TICKS_PER_QUARTER`` (12 per
quarter: 16ths, 8th and 16th triplets), and the tune is transposed so its tonic is C, by the smallest
shift (−6…+5 semitones), so the model learns scale degrees and every key works.

**Pickups and irregular bars.** abc2midi starts the first note at time 0 whether or not the tune opens with
an anacrusis, so the bar grid would be off by the pickup for the whole tune. The pickup is measured, not
guessed: abc2midi's own duration of the music before the first bar line; when it is shorter than a bar,
the tune is moved right so the pickup ends on bar 1's downbeat (bar 0 then holds the pickup after rests,
as notated). Irregular bars inside a tune (abc2midi warns about them; about a fifth of these tunes have
one, mostly repeat endings and typos) are kept as parsed: later notes stay on the grid abc2midi gives them.
Tunes with unknown keys or modes, a missing or unsupported meter, a meter change or fewer than 8 notes
are counted and dropped (``LoadReport``), never repaired.

The test split is a fixed 10 % of tunes chosen by a hash of the tune's collection, file and ``X:`` number
(``split_of``), so it never depends on the order of files or on other tunes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import symusic

TICKS_PER_QUARTER = 12
SOURCE_TPQ = 480
MODES: tuple[str, ...] = ("major", "minor", "dorian", "mixolydian")
SUPPORTED_METERS: tuple[tuple[int, int], ...] = ((2, 4), (3, 4), (4, 4), (6, 8), (9, 8), (12, 8), (2, 2), (3, 8))
TEST_SHARE = 0.10
_NOTE_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_MODE_ALIASES = {
    "": "major",
    "maj": "major",
    "major": "major",
    "ion": "major",
    "ionian": "major",
    "m": "minor",
    "min": "minor",
    "minor": "minor",
    "aeo": "minor",
    "aeolian": "minor",
    "dor": "dorian",
    "dorian": "dorian",
    "mix": "mixolydian",
    "mixolydian": "mixolydian",
}


@dataclass(frozen=True)
class Note:
    """A melody note on the grid: ``onset`` and ``duration`` in ticks of ``TICKS_PER_QUARTER``, MIDI ``pitch``."""

    onset: int
    duration: int
    pitch: int


@dataclass
class Tune:
    """A parsed, quantised, key-normalised tune (tonic transposed to C; ``shift`` semitones applied)."""

    id: str
    title: str
    tonic_pc: int
    mode: str
    numerator: int
    denominator: int
    notes: list[Note]
    shift: int = 0
    pickup_ticks: int = 0

    @property
    def bar_ticks(self) -> int:
        return bar_ticks(self.numerator, self.denominator)

    @property
    def n_bars(self) -> int:
        end = max(n.onset + n.duration for n in self.notes)
        return -(-end // self.bar_ticks)


@dataclass
class LoadReport:
    """What happened to every tune read: kept, or dropped with a reason."""

    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    with_pickup: int = 0


def bar_ticks(numerator: int, denominator: int) -> int:
    """Length of a bar in grid ticks."""
    return numerator * 4 * TICKS_PER_QUARTER // denominator


def bars_spanned(length_ticks: int, numerator: int, denominator: int) -> int:
    """Bars of ``numerator/denominator`` that ``length_ticks`` grid ticks reach into (a started bar counts):
    how many bars of a melody a seed of that length takes, at submit and in the generator alike."""
    return -(-length_ticks // bar_ticks(numerator, denominator))


def parse_key(value: str) -> tuple[int, str] | None:
    """``K:`` field → (tonic pitch class, mode), or None (``K:none``, ``K:HP``, unknown modes)."""
    match = re.match(r"\s*([A-Ga-g])([#b]?)\s*([A-Za-z]*)", value)
    if match is None:
        return None
    letter, accidental, mode = match.groups()
    mode_name = _MODE_ALIASES.get(mode.lower()[:3] if len(mode) > 3 else mode.lower())
    if mode_name is None:
        mode_name = _MODE_ALIASES.get(mode.lower())
    if mode_name is None:
        return None
    pc = (_NOTE_PC[letter.upper()] + {"#": 1, "b": -1, "": 0}[accidental]) % 12
    return pc, mode_name


def parse_meter(value: str) -> tuple[int, int] | None:
    value = value.strip()
    if value == "C":
        return 4, 4
    if value == "C|":
        return 2, 2
    match = re.match(r"(\d+)\s*/\s*(\d+)", value)
    return (int(match.group(1)), int(match.group(2))) if match else None


def split_tunes(text: str) -> list[str]:
    """The ``X:`` tunes of a multi-tune ABC file, each with its own header."""
    parts = re.split(r"\n(?=X:)", "\n" + text)
    return [p.strip() + "\n" for p in parts if p.strip().startswith("X:")]


def _header(tune: str, field_name: str) -> str | None:
    match = re.search(rf"^{field_name}:(.*)$", tune, re.MULTILINE)
    return match.group(1).strip() if match else None


@contextlib.contextmanager
def _quiet_output() -> Iterator[None]:
    """abc2midi (inside symusic) prints its warnings at the C level: silence file descriptors 1 and 2 while
    it parses (training and evaluation only; the server never parses ABC)."""
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:
        yield
        return
    with open(os.devnull, "wb") as null:
        for fd in (1, 2):
            os.dup2(null.fileno(), fd)
        try:
            yield
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


def top_line(score: symusic.Score) -> list[tuple[int, int, int]]:
    """(onset, duration, pitch) in source ticks of the highest note at each onset, overlaps cut."""
    notes = sorted(
        ((n.time, n.duration, n.pitch) for track in score.tracks if not track.is_drum for n in track.notes),
        key=lambda n: (n[0], -n[2]),
    )
    line: list[tuple[int, int, int]] = []
    for onset, duration, pitch in notes:
        if line and line[-1][0] == onset:
            continue  # a lower note of a chord
        if line and line[-1][0] + line[-1][1] > onset:
            prev = line[-1]
            line[-1] = (prev[0], onset - prev[0], prev[2])
        line.append((onset, duration, pitch))
    return [n for n in line if n[1] > 0]


def quantise(line: Sequence[tuple[int, int, int]], tpq: int) -> list[Note]:
    """Source-tick notes → grid notes (onsets rounded; each note lasts to the next onset when they touch)."""
    scale = TICKS_PER_QUARTER / tpq
    notes = []
    for index, (onset, duration, pitch) in enumerate(line):
        start = round(onset * scale)
        end = round((onset + duration) * scale)
        if index + 1 < len(line):
            next_start = round(line[index + 1][0] * scale)
            if abs(end - next_start) <= 1:  # abc2midi's articulation gaps of a tick or two
                end = next_start
            end = min(end, next_start)
        if end > start:
            notes.append(Note(start, end - start, pitch))
    return notes


def beat_ticks(numerator: int, denominator: int) -> int:
    """Length of a beat in grid ticks: the denominator's note, dotted in compound x/8 (6/8, 9/8, 12/8)."""
    unit = 4 * TICKS_PER_QUARTER // denominator
    return unit * 3 if denominator == 8 and numerator % 3 == 0 and numerator > 3 else unit


def pickup_ticks(text: str, numerator: int, denominator: int) -> int:
    """Length (grid ticks) of the tune's anacrusis: abc2midi's own duration of the music before the first bar
    line, when it is shorter than a bar; 0 when the tune starts on a downbeat."""
    header, _, body = text.partition("\nK:")
    key_line, _, music = body.partition("\n")
    music = re.sub(r"^%.*$", "", music, flags=re.MULTILINE).lstrip(" \t\n|:[]")
    first = music.split("|", 1)[0]
    if not first.strip():
        return 0
    try:
        with _quiet_output():
            head = symusic.Score.from_abc(f"{header}\nK:{key_line}\n{first}|\n")
    except Exception:
        return 0
    notes = top_line(head)
    if not notes:
        return 0
    length = round(max(on + dur for on, dur, _ in notes) * TICKS_PER_QUARTER / head.tpq)
    return length if 0 < length < bar_ticks(numerator, denominator) else 0


def tonic_shift(tonic_pc: int) -> int:
    """Semitones that move ``tonic_pc`` to C by the smallest step (−6…+5)."""
    shift = -tonic_pc % 12
    return shift - 12 if shift > 5 else shift


def parse_tune(text: str, tune_id: str, report: LoadReport | None = None) -> Tune | None:
    """One ABC tune → a Tune, or None (the reason counted in ``report``)."""
    report = report if report is not None else LoadReport()
    key = parse_key(_header(text, "K") or "")
    meter = parse_meter(_header(text, "M") or "")
    if key is None:
        report.dropped["unknown key or mode"] += 1
        return None
    if meter is None or meter not in SUPPORTED_METERS:
        report.dropped["unsupported or missing meter"] += 1
        return None
    if len(re.findall(r"^M:", text, re.MULTILINE)) > 1 or re.search(r"\[M:", text):
        report.dropped["meter change"] += 1
        return None
    try:
        with _quiet_output():
            score = symusic.Score.from_abc(text)
    except Exception:
        report.dropped["abc2midi could not parse it"] += 1
        return None
    notes = quantise(top_line(score), score.tpq)
    if len(notes) < 8:
        report.dropped["fewer than 8 notes"] += 1
        return None
    numerator, denominator = meter
    pickup = pickup_ticks(text, numerator, denominator)
    if pickup:
        pickup = bar_ticks(numerator, denominator) - pickup  # the pickup's notes end on bar 1's downbeat
    shift = tonic_shift(key[0])
    notes = [Note(n.onset + pickup, n.duration, n.pitch + shift) for n in notes]
    tune = Tune(tune_id, _header(text, "T") or "", key[0], key[1], numerator, denominator, notes, shift, pickup)
    if pickup:
        report.with_pickup += 1
    report.kept += 1
    return tune


def split_of(tune_id: str) -> str:
    """``"test"`` for a fixed 10 % of tunes (by a hash of the id), else ``"train"``."""
    digest = hashlib.sha256(tune_id.encode()).digest()
    return "test" if int.from_bytes(digest[:4], "big") / 2**32 < TEST_SHARE else "train"


def read_corpus(folders: Iterable[Path], report: LoadReport | None = None) -> list[Tune]:
    """Every tune of every ``.abc`` file under ``folders`` (sorted paths). Raises FileNotFoundError for a
    missing folder and ValueError for one without ``.abc`` files or one named ``essenFolksong``."""
    report = report if report is not None else LoadReport()
    tunes = []
    for folder in folders:
        folder = Path(folder)
        if "essenfolksong" in folder.name.lower():
            raise ValueError("essenFolksong has a non-commercial licence: it is not used for Cadenza's weights")
        if not folder.is_dir():
            raise FileNotFoundError(f"corpus folder not found: {folder}")
        files = sorted(folder.rglob("*.abc"))
        if not files:
            raise ValueError(f"{folder} has no .abc files")
        for path in files:
            for text in split_tunes(path.read_text(encoding="latin-1")):
                number = (_header(text, "X") or "0").strip()
                tune = parse_tune(text, f"{folder.name}/{path.stem}/{number}", report)
                if tune is not None:
                    tunes.append(tune)
    return tunes
