"""Prompt → plan: what the parser takes (and reports unused), explicit fields overriding the text, the form
sized to the duration, chords and the genre catalogue."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cadenza.engines.base import EngineInputError
from cadenza.engines.drums.styles import catalog_for_settings
from cadenza.engines.track import ENGINE
from cadenza.engines.track.genres import GenreError, genres_for
from cadenza.engines.track.plan import bar_seconds, resolve
from cadenza.engines.track.prompt import parse_prompt
from cadenza.music.harmony import parse_numeral
from cadenza.settings import Settings

WORDS = {name: genre.words for name, genre in genres_for(None).items()}


def plan_of(prompt: str, seed: int = 1, settings=None, **fields):
    params, _ = ENGINE.validate({"prompt": prompt, **fields}, settings)
    return resolve(params, settings, seed)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("lo-fi hip hop, 84 bpm, A minor, dusty Rhodes, 60 seconds",
         {"tempo_bpm": 84, "key": "A minor", "duration_s": 60, "genre": "lo-fi hip hop"}),
        ("a slow jazz waltz in Bb with upright bass, 1:30",
         {"tempo_word": 0.15, "key": "Bb", "time_signature": (3, 4), "duration_s": 90, "genre": "jazz"}),
        ("uptempo trap in F# minor with 808s, two minutes, loopable",
         {"tempo_word": 0.8, "key": "F# minor", "duration_s": 120, "genre": "trap", "structure": ["loop"]}),
        ("irish folk jig in 6/8, D mixolydian, 45 s",
         {"time_signature": (6, 8), "key": "D mixolydian", "duration_s": 45, "genre": "folk"}),
        ("house in the key of E flat minor, 124 beats per minute, 3 minutes",
         {"tempo_bpm": 124, "key": "Eb minor", "duration_s": 180, "genre": "house"}),
    ],
)  # fmt: skip
def test_the_parser_reads_tempo_key_meter_duration_genre(prompt: str, expected: dict) -> None:
    parsed = parse_prompt(prompt, WORDS)
    for name, value in expected.items():
        assert getattr(parsed, name) == value, (name, parsed)


def test_words_not_understood_are_reported_never_dropped() -> None:
    parsed = parse_prompt("banjo polka with a kazoo solo, 100 bpm", WORDS)
    assert parsed.unused == ["banjo", "polka", "kazoo", "solo"] and parsed.filler == ["with", "a"]
    plan = plan_of("banjo polka with a kazoo solo, 100 bpm")
    assert plan.interpretation["unused_words"] == ["banjo", "polka", "kazoo", "solo"]
    assert any("banjo" in w for w in plan.warnings)
    assert plan.interpretation["tempo_bpm"] == {"value": 100.0, "source": "prompt", "words": "100 bpm"}


def test_instruments_moods_and_removed_parts() -> None:
    plan = plan_of("dark lo-fi hip hop with rhodes, vibraphone, strings and choir, no drums")
    parts = {p.name: p for p in plan.parts}
    assert "drums" not in parts and plan.drum_style is None
    assert parts["harmony"].program == 4 and parts["lead"].program == 11 and parts["pad"].program == 48
    assert parts["choir"].role == "pad" and parts["choir"].program == 52  # a second pad: an extra part
    assert plan.key.mode == "minor"
    assert plan.interpretation["moods"]["value"] == ["dark"]


def test_explicit_fields_override_the_text() -> None:
    plan = plan_of("jazz in F major, 120 bpm, 60 s", tempo=96, key="D minor", time_signature=[3, 4], duration_s=20)
    assert (plan.tempo_bpm, plan.key.name, plan.meter) == (96, "D minor", (3, 4))
    assert plan.duration_s == 20 and plan.interpretation["tempo_bpm"]["source"] == "request"
    assert plan_of("jazz, 60 s", genre="reggae").genre.name == "reggae"


@pytest.mark.parametrize(
    ("prompt", "duration_s"), [("lo-fi hip hop, 84 bpm", 60), ("jazz waltz, 97 bpm", 45.5), ("house", 5)]
)
def test_the_form_fits_the_duration_and_the_song_cadences(prompt: str, duration_s: float) -> None:
    plan = plan_of(prompt, duration_s=duration_s)
    assert plan.duration_s == duration_s
    assert plan.bars == max(1, math.floor(duration_s / plan.bar_s + 1e-6))
    assert plan.bars * plan.bar_s <= duration_s + 1e-9 < (plan.bars + 1) * plan.bar_s
    assert sum(s.bars for s in plan.sections) == plan.bars == len(plan.chords) == len(plan.energy)
    assert [s.start_bar for s in plan.sections] == [
        sum(x.bars for x in plan.sections[:i]) for i in range(len(plan.sections))
    ]
    tonic = "i" if plan.key.mode in ("minor", "dorian") else "I"
    assert plan.chords[0].numeral == tonic and plan.chords[-1].numeral == tonic
    for section in plan.sections[:-1]:
        if section.bars >= 2:  # a cadence chord closes every section
            assert plan.chords[section.start_bar + section.bars - 1].numeral in ("V7", "IV7", "bVII")


def test_a_loop_is_whole_bars_ending_on_the_chord_that_leads_back() -> None:
    plan = plan_of("house loop, 124 bpm, A minor, 15 seconds, loopable")
    assert plan.loop and [s.name for s in plan.sections] == ["loop"]
    assert plan.duration_s == pytest.approx(plan.bars * bar_seconds((4, 4), 124))
    assert plan.bars == round(15 / bar_seconds((4, 4), 124))
    assert plan.chords[0].numeral == "i" and plan.chords[-1].numeral == "V7"
    assert any("whole bars" in w for w in plan.warnings)


def test_a_build_rises_into_the_chorus() -> None:
    plan = plan_of("rock with a build, 120 bpm, 60 seconds")
    names = [s.name for s in plan.sections]
    assert names[names.index("build") + 1] == "chorus"
    build = plan.sections[names.index("build")]
    ramp = plan.energy[build.start_bar : build.start_bar + build.bars + 1]
    assert ramp == sorted(ramp) and ramp[0] < ramp[-1]


def test_the_same_seed_gives_the_same_plan_and_a_key_when_none_is_named() -> None:
    first, again = plan_of("funk", seed=5), plan_of("funk", seed=5)
    assert first.key == again.key and [c.numeral for c in first.chords] == [c.numeral for c in again.chords]
    assert first.key.mode == "dorian" and "seed" in first.interpretation["key"]["source"]


def test_bad_requests_are_clear() -> None:
    with pytest.raises(EngineInputError, match="unknown genre"):
        plan_of("x", genre="polka")
    with pytest.raises(ValueError, match="time_signature"):
        ENGINE.validate({"prompt": "x", "time_signature": [5, 4]}, None)
    with pytest.raises(EngineInputError, match="cannot be written"):
        plan_of("prog rock in 7/8")
    with pytest.raises(EngineInputError, match="unknown instrument"):
        plan_of("jazz", instruments=["theremin"])
    assert any("10 minutes" in w or "600" in w for w in plan_of("ambient, 10 minutes").warnings)


def test_the_catalogue_has_every_genre_of_the_issue_with_drum_styles_that_exist() -> None:
    genres = genres_for(None)
    wanted = {"lo-fi hip hop", "boom bap", "trap", "house", "techno", "drum and bass", "funk", "soul", "jazz",
              "rock", "pop ballad", "reggae", "latin", "folk", "ambient"}  # fmt: skip
    assert wanted <= set(genres)
    styles = set(catalog_for_settings(None).names)
    for genre in genres.values():
        assert genre.drum_style is None or genre.drum_style in styles, genre.name
        for family in genre.progressions.values():
            for progression in family:
                assert all(parse_numeral(n) for n in progression)


def test_users_extend_the_catalogue_with_a_file(tmp_path: Path) -> None:
    extra = tmp_path / "genres.yaml"
    extra.write_text(
        "genres:\n  - name: polka\n    words: [polka, oompah]\n    tempo_bpm: [100, 140, 120]\n    meter: [2, 4]\n"
        "    drum_style: Questlove\n    palette: {bass: 58, harmony: 21, lead: 71}\n"
        "    progressions: {major: [[I, V7, V7, I]], minor: [[i, V7, V7, i]]}\n    bass: root_eighths\n"
        "    comp: skank\n    sections: [[verse, 0.5, 0.6], [chorus, 0.5, 0.8]]\n    mix: {}\n"
    )
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db'}", files_dir=tmp_path, engines={"track": {"genres_path": extra}}
    )
    plan = plan_of("an oompah polka in F, 30 s", settings=settings)
    assert plan.genre.name == "polka" and plan.meter == (2, 4) and plan.interpretation["unused_words"] == []
    extra.write_text("genres:\n  - name: broken\n    tempo_bpm: [1, 2, 3]\n")
    with pytest.raises(GenreError, match="broken"):
        ENGINE.resolve("catalogues")(settings)


def test_extra_parts_are_bounded_and_the_rest_is_reported() -> None:
    many = "jazz with piano, organ, guitar, rhodes, strings, choir, flute, sax, trumpet, violin and harp"
    plan = plan_of(many)
    extras = [p for p in plan.parts if p.name not in ("drums", "bass", "harmony", "lead", "pad")]
    assert len(extras) == 3 and len(plan.parts) == 8
    assert any("at most 3 extra parts" in w and "harp" in w for w in plan.warnings)
