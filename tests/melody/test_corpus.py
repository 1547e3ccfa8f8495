"""Corpus reading: ABC headers, tune splitting, pickups measured from the ABC, top line, split by tune."""

from __future__ import annotations

from pathlib import Path

import music21
import pytest

from cadenza.engines.melody.corpus import (
    LoadReport,
    bar_ticks,
    parse_key,
    parse_meter,
    parse_tune,
    read_corpus,
    split_of,
    split_tunes,
    tonic_shift,
)

CORPUS = Path(music21.__file__).parent / "corpus"

JIG = """X:7
T:Test jig
M:6/8
L:1/8
K:D
A|dfa afd|gbg faf|ege cec|d3 d2:|
"""

REEL = """X:8
T:Test reel
M:C|
L:1/8
K:ADor
EAAG ABcA|BGGF GABG|EAAG ABcd|edcB A4|
"""


def test_headers() -> None:
    assert parse_key("D") == (2, "major") and parse_key("Em") == (4, "minor")
    assert parse_key("ADor") == (9, "dorian") and parse_key("GMix") == (7, "mixolydian")
    assert parse_key("F#m") == (6, "minor") and parse_key("Bb") == (10, "major")
    assert parse_key("none") is None and parse_key("HP") is None
    assert parse_meter("6/8") == (6, 8) and parse_meter("C") == (4, 4) and parse_meter("C|") == (2, 2)
    assert [t.splitlines()[0] for t in split_tunes("% file\n" + JIG + "\n" + REEL)] == ["X:7", "X:8"]
    assert [tonic_shift(pc) for pc in (0, 2, 5, 6, 7, 11)] == [0, -2, -5, -6, 5, 1]


def test_a_pickup_is_measured_and_ends_on_the_first_downbeat() -> None:
    """The jig's one-8th pickup (A) is moved so that the next note (d) falls on bar 1's downbeat."""
    report = LoadReport()
    jig = parse_tune(JIG, "test/jig/7", report)
    assert jig is not None and jig.pickup_ticks == bar_ticks(6, 8) - 6 and report.with_pickup == 1
    first, second = jig.notes[:2]
    assert first.onset == bar_ticks(6, 8) - 6 and second.onset == bar_ticks(6, 8)  # d on the downbeat
    assert (first.pitch, second.pitch) == (69 - 2, 74 - 2)  # A and d, with the tonic D moved to C
    reel = parse_tune(REEL, "test/reel/8")
    assert reel is not None and reel.pickup_ticks == 0 and reel.mode == "dorian"
    assert reel.notes[0].onset == 0 and reel.shift == 3  # A → C


def test_whole_corpus_loads_with_a_fixed_test_split() -> None:
    report = LoadReport()
    tunes = read_corpus([CORPUS / "oneills1850"], report)
    assert report.kept == len(tunes) > 1500 and sum(report.dropped.values()) < 0.02 * report.kept
    test = [t for t in tunes if split_of(t.id) == "test"]
    assert 0.07 < len(test) / len(tunes) < 0.13
    assert split_of(tunes[0].id) == split_of(tunes[0].id)
    for tune in tunes[:200]:
        assert all(
            a.onset + a.duration <= b.onset for a, b in zip(tune.notes, tune.notes[1:], strict=False)
        )  # monophonic
    with pytest.raises(ValueError, match="non-commercial"):
        read_corpus([CORPUS / "essenFolksong"])
