"""Style catalog: built-in styles, lookup, user files merged over the built-in ones, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza.engines.drums.data import GMD_STYLES
from cadenza.engines.drums.styles import (
    GMD_STYLE_LABELS,
    StyleCatalogError,
    load_catalog,
    normalize_style_name,
)

REQUIRED = ("J Dilla", "Metro Boomin", "Questlove")


def test_builtin_catalog_has_required_and_genre_spanning_styles() -> None:
    catalog = load_catalog()
    for name in REQUIRED:
        assert catalog.get(name).name == name
    assert len(catalog.styles) >= 8
    genres = {max(style.conditioning, key=style.conditioning.get) for style in catalog.styles}
    assert {"hiphop", "soul", "funk", "rock", "jazz", "reggae"} <= genres
    assert "afrobeat" in genres and ("afrocuban" in genres or "latin" in genres)
    for style in catalog.styles:
        low, high = style.preferred_tempo_range
        assert low <= high and style.description and style.model_id


def test_style_fields_match_the_original_plan() -> None:
    catalog = load_catalog()
    dilla, metro, quest = (catalog.get(name) for name in REQUIRED)
    assert 54 <= dilla.humanization.swing_percent <= 62
    timing = dilla.humanization.microtiming_ms
    assert timing["kick"].mean_ms < 0 < timing["snare"].mean_ms  # kick early, snare late
    assert timing["closed_hihat"].std_ms > 10  # loose hats
    assert metro.rules.half_time_snare and metro.rules.hihat_rolls is not None
    assert metro.rules.hihat_rolls.thirty_second > 0 and metro.rules.hihat_rolls.triplet > 0
    assert metro.rules.kick_density < 1
    assert "no trap" in metro.description.lower()
    assert quest.humanization.ghost_note_probability >= 0.3


def test_style_labels_agree_with_the_model_styles() -> None:
    assert set(GMD_STYLE_LABELS) == set(GMD_STYLES)


@pytest.mark.parametrize("query", ["J Dilla", "j dilla", "J_Dilla", "jdilla", "JDILLA", "j-dilla", " J  Dilla "])
def test_lookup_ignores_case_spaces_underscores_hyphens(query: str) -> None:
    assert load_catalog().get(query).name == "J Dilla"


def test_unknown_style_raises_keyerror_listing_valid_styles() -> None:
    catalog = load_catalog()
    with pytest.raises(KeyError) as info:
        catalog.get("Travis Barker")
    message = str(info.value)
    assert "Travis Barker" in message
    for name in catalog.names:
        assert name in message


def test_normalize_style_name() -> None:
    assert normalize_style_name("Afro-Cuban") == normalize_style_name("afro cuban") == "afrocuban"


USER_STYLES = """
styles:
  - name: j_dilla
    description: My own Dilla, straighter.
    preferred_tempo_range: [85, 95]
    conditioning: {hiphop: 1.0}
    humanization: {swing_percent: 55}
  - name: Lo-Fi Study
    description: Sleepy lo-fi hip-hop.
    preferred_tempo_range: [70, 85]
    conditioning: {hiphop: 0.8, jazz: 0.2}
    humanization:
      swing_percent: 60
      microtiming_ms: {snare: {mean_ms: 15, std_ms: 5}}
    rules: {kick_density: 0.8}
"""


def test_user_file_overrides_and_extends_builtin(tmp_path: Path) -> None:
    user = tmp_path / "styles.yaml"
    user.write_text(USER_STYLES)
    builtin = load_catalog()
    catalog = load_catalog(user)
    assert len(catalog.styles) == len(builtin.styles) + 1
    assert catalog.get("J Dilla").humanization.swing_percent == 55  # replaced by name
    assert catalog.get("J Dilla").description == "My own Dilla, straighter."
    assert catalog.get("lofi study").rules.kick_density == 0.8
    assert builtin.get("J Dilla").humanization.swing_percent == 58  # built-in untouched


BAD_FIELD = """
styles:
  - name: Broken Beat
    description: swing out of range
    preferred_tempo_range: [80, 100]
    conditioning: {hiphop: 1.0}
    humanization: {swing_percent: 90}
"""

BAD_CONDITIONING = """
styles:
  - name: Trap Lord
    description: not a GMD style
    preferred_tempo_range: [130, 150]
    conditioning: {trap: 1.0}
"""

BAD_INSTRUMENT = """
styles:
  - name: Cowbell Fever
    description: cowbell is no drum class
    preferred_tempo_range: [100, 120]
    conditioning: {rock: 1.0}
    humanization: {microtiming_ms: {cowbell: {mean_ms: 3}}}
"""

EXTRA_KEY = """
styles:
  - name: Typo
    description: misspelt rule
    preferred_tempo_range: [100, 120]
    conditioning: {rock: 1.0}
    rules: {half_time_snar: true}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BAD_FIELD, ["'Broken Beat'", "humanization.swing_percent", "75"]),
        (BAD_CONDITIONING, ["'Trap Lord'", "conditioning", "trap"]),
        (BAD_INSTRUMENT, ["'Cowbell Fever'", "microtiming_ms", "cowbell"]),
        (EXTRA_KEY, ["'Typo'", "rules.half_time_snar"]),
        ("styles: [{name: Nameless}]", ["'Nameless'", "description", "conditioning"]),
        ("styles:\n  - description: no name\n", ["#1", "name"]),
        ("just a string", ["expected a mapping"]),
        ("styles: [unclosed", ["invalid YAML"]),
    ],
)
def test_bad_user_file_names_file_style_and_field(tmp_path: Path, text: str, expected: list[str]) -> None:
    user = tmp_path / "bad.yaml"
    user.write_text(text)
    with pytest.raises(StyleCatalogError) as info:
        load_catalog(user)
    message = str(info.value)
    assert str(user) in message
    for part in expected:
        assert part in message


def test_duplicate_and_missing_user_files(tmp_path: Path) -> None:
    user = tmp_path / "dup.yaml"
    user.write_text(
        "styles:\n"
        "  - {name: A B, description: x, preferred_tempo_range: [90, 100], conditioning: {rock: 1}}\n"
        "  - {name: a_b, description: y, preferred_tempo_range: [90, 100], conditioning: {rock: 1}}\n"
    )
    with pytest.raises(StyleCatalogError, match="'a_b': duplicate name"):
        load_catalog(user)
    with pytest.raises(StyleCatalogError, match="cannot read"):
        load_catalog(tmp_path / "missing.yaml")


def test_catalog_follows_the_given_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cadenza.engines.drums.styles import catalog_for_settings
    from cadenza.settings import load_settings

    user = tmp_path / "styles.yaml"
    user.write_text(USER_STYLES)
    monkeypatch.setenv("CADENZA_ENGINES__DRUMS__STYLES_PATH", str(user))
    assert "Lo-Fi Study" in catalog_for_settings(load_settings()).names
    monkeypatch.delenv("CADENZA_ENGINES__DRUMS__STYLES_PATH")
    assert "Lo-Fi Study" not in catalog_for_settings(load_settings()).names
    assert "Lo-Fi Study" not in catalog_for_settings(None).names  # no settings: the built-in catalog only


def test_cached_catalog_reuses_until_the_file_changes(tmp_path: Path) -> None:
    import os

    from cadenza.engines.drums.styles import cached_catalog

    assert cached_catalog() is cached_catalog()
    user = tmp_path / "styles.yaml"
    user.write_text(USER_STYLES)
    first = cached_catalog(user)
    assert first is cached_catalog(user) and "Lo-Fi Study" in first.names
    user.write_text(USER_STYLES.replace("Lo-Fi Study", "Lo-Fi Night"))
    stat = user.stat()
    os.utime(user, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = cached_catalog(user)
    assert "Lo-Fi Night" in second.names and "Lo-Fi Study" not in second.names
    user.unlink()
    with pytest.raises(StyleCatalogError):
        cached_catalog(user)
