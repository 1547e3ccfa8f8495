"""DrumsRequest validation: every field rule of POST /v1/drums."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cadenza.engines.drums import ENGINE
from cadenza.engines.drums.arrange import PATTERN_TYPES
from cadenza.engines.drums.schema import DrumsRequest, PatternType
from cadenza.engines.drums.styles import load_catalog


def make(**fields: Any) -> DrumsRequest:
    return DrumsRequest.model_validate({"producer_style": "J Dilla", **fields})


def test_defaults_and_canonical_style_name() -> None:
    request = DrumsRequest.model_validate({"producer_style": "metro_boomin"})
    assert request.producer_style == "Metro Boomin"
    assert (request.bars, request.tempo, request.time_signature) == (4, None, (4, 4))
    assert request.humanize is True and request.pattern_type == "verse"
    assert request.temperature == 0.9 and request.top_k == 0 and request.top_p == 1.0
    assert request.seed is None and request.formats == ["midi"] and request.preview_formats == []


@pytest.mark.parametrize(("style", "tempo"), [("House", 122.0), ("Metro Boomin", 145.0), ("J Dilla", 89.0)])
def test_omitted_tempo_is_the_middle_of_the_styles_range(style: str, tempo: float) -> None:
    """Regression: the default was 90 BPM for every style (House or Metro Boomin got a range warning)."""
    from cadenza.engines.drums import ENGINE

    params, _ = ENGINE.validate({"producer_style": style}, None)
    assert ENGINE.check_inputs(params, {}, None) == [] and params.tempo == tempo  # completed before the job is stored
    params, _ = ENGINE.validate({"producer_style": style, "tempo": 60}, None)
    warnings = ENGINE.check_inputs(params, {}, None)
    assert params.tempo == 60 and warnings  # an explicit tempo is kept, with its warning


def test_a_reference_sets_the_default_tempo_and_meter() -> None:
    from cadenza.engines.base import EngineInputError
    from cadenza.engines.drums import ENGINE

    facts = {"reference_midi": {"tempo_bpm": 93.5, "time_signature": [3, 4]}}
    params, _ = ENGINE.validate({"producer_style": "J Dilla"}, None)
    assert ENGINE.check_inputs(params, facts, None) == []
    assert params.tempo == 93.5 and tuple(params.time_signature) == (3, 4)
    explicit, _ = ENGINE.validate({"producer_style": "J Dilla", "tempo": 80, "time_signature": [3, 4]}, None)
    ENGINE.check_inputs(explicit, facts, None)
    assert explicit.tempo == 80
    clash, _ = ENGINE.validate({"producer_style": "J Dilla", "time_signature": [4, 4]}, None)
    with pytest.raises(EngineInputError, match="reference_midi is in 3/4 but time_signature is 4/4"):
        ENGINE.check_inputs(clash, facts, None)
    slow, _ = ENGINE.validate({"producer_style": "J Dilla"}, None)
    warnings = ENGINE.check_inputs(slow, {"reference_midi": {"tempo_bpm": 40, "time_signature": [4, 4]}}, None)
    assert slow.tempo == 60 and any("outside 60–200" in w for w in warnings)


def test_unknown_style_lists_valid_ones() -> None:
    with pytest.raises(ValidationError) as info:
        make(producer_style="Ringo")
    message = str(info.value)
    assert "Ringo" in message
    for name in load_catalog().names:
        assert name in message


def test_style_checked_against_a_given_catalog(tmp_path: Path) -> None:
    user = tmp_path / "s.yaml"
    user.write_text(
        "styles:\n  - {name: Lo-Fi, description: x, preferred_tempo_range: [70, 80], conditioning: {hiphop: 1}}\n"
    )
    catalog = load_catalog(user)
    assert (
        DrumsRequest.model_validate({"producer_style": "lofi"}, context={"catalog": catalog}).producer_style == "Lo-Fi"
    )
    with pytest.raises(ValidationError):
        DrumsRequest.model_validate({"producer_style": "lofi"})


def test_style_checked_against_the_catalog_of_given_settings(tmp_path: Path) -> None:
    """The worker validates with ``context={"settings": ...}``: that settings' styles file counts."""
    from cadenza.settings import Settings

    user = tmp_path / "s.yaml"
    user.write_text(
        "styles:\n  - {name: Lo-Fi, description: x, preferred_tempo_range: [70, 80], conditioning: {hiphop: 1}}\n"
    )
    settings = Settings(engines={"drums": {"styles_path": user}})
    request = DrumsRequest.model_validate({"producer_style": "lofi"}, context={"settings": settings})
    assert request.producer_style == "Lo-Fi"
    with pytest.raises(ValidationError):
        DrumsRequest.model_validate({"producer_style": "lofi"}, context={"settings": Settings()})


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("bars", [1, 32], [0, 33, 2.5, "many"]),
        ("tempo", [60, 200, 97.5], [59.9, 200.1, "fast"]),
        ("time_signature", [[4, 4], [3, 4], [6, 8], [7, 8], [1, 2], [16, 16]], [[0, 4], [17, 4], [4, 3], [4, 32], [4]]),
        ("humanize", [True, False], ["perhaps"]),
        ("pattern_type", list(PATTERN_TYPES), ["solo", "Verse", ""]),
        ("temperature", [0.1, 2.0], [0.09, 2.01]),
        ("top_k", [0, 100], [-1, 101]),
        ("top_p", [0.01, 1.0], [0, -0.1, 1.01]),
        ("seed", [0, 2**63 - 1, None], [-1, 2**63]),
        ("formats", [["midi"], ["wav"], ["midi", "json", "wav", "flac", "mp3"], []], [["ogg"], ["MIDI"], "wav"]),
    ],
)
def test_field_ranges(field: str, good: list[Any], bad: list[Any]) -> None:
    for value in good:
        make(**{field: value})
    for value in bad:
        with pytest.raises(ValidationError) as info:
            make(**{field: value})
        assert info.value.errors()[0]["loc"][0] == field


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        make(swing=60)


def test_formats_deduplicated_and_previews_in_order() -> None:
    request = make(formats=["mp3", "midi", "wav", "mp3"])
    assert request.formats == ["mp3", "midi", "wav"]
    assert request.preview_formats == ["mp3", "wav"]


def test_pattern_types_single_source() -> None:
    assert PatternType.__args__ == PATTERN_TYPES


def test_openapi_schema_documents_every_field() -> None:
    schema = DrumsRequest.model_json_schema()
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
    assert schema["examples"][0] == ENGINE.example
    DrumsRequest.model_validate(ENGINE.example)


def test_engine_spec() -> None:
    assert (ENGINE.kind, ENGINE.route, ENGINE.request_model) == ("drums", "drums", DrumsRequest)
    assert ENGINE.retry_on_crash and callable(ENGINE.resolve("run")) and callable(ENGINE.resolve("list_models"))
    assert ENGINE.load_model is not None and ENGINE.unload_model is not None
