"""Producer-style catalog of the drums engine.

The built-in catalog is the data file ``styles.yaml`` next to this module; users extend or override
it without code through a YAML file of the same shape (setting ``engines.drums.styles_path``), merged over the
built-in one by style name. Every style is validated with Pydantic on load; a bad file raises
:class:`StyleCatalogError` naming the file, the style and the field.

Style names match case-insensitively, ignoring spaces, underscores and hyphens ("J Dilla",
"j_dilla", "jdilla" are the same style).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cadenza.engines.drums.gmd import GMD_STYLES
from cadenza.music.drum_map import DRUM_CLASSES

BUILTIN_STYLES_PATH = Path(__file__).with_name("styles.yaml")

# Primary style labels of the Groove MIDI Dataset (info.csv ``style`` before the slash); the drum
# model is conditioned on these (Gillick et al., ICML 2019).
GMD_STYLE_LABELS: tuple[str, ...] = GMD_STYLES


class StyleCatalogError(ValueError):
    """A styles file cannot be read or one of its styles is invalid (message names file, style, field)."""


def normalize_style_name(name: str) -> str:
    """Lookup key of a style name: lower case without spaces, underscores and hyphens."""
    return re.sub(r"[\s_\-]+", "", name).casefold()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(_Strict):
    """Declared micro-timing of one instrument, relative to the swung grid: what its hits measure."""

    mean_ms: float = Field(0.0, ge=-50, le=50, description="Mean placement relative to the swung grid, ms (+ = late).")
    std_ms: float = Field(
        0.0, ge=0, le=40, description="Spread (standard deviation) of the placements in a groove, ms."
    )


class Humanization(_Strict):
    swing_percent: float = Field(
        50.0,
        ge=50,
        le=75,
        description="MPC swing: the second 16th of each 8th-note pair sits at this % of the 8th (50 = straight, "
        "66 ≈ triplet; Roger Linn, Akai MPC60).",
    )
    microtiming_ms: dict[str, Timing] = Field(
        default_factory=dict,
        description="Per drum class (kick, snare, closed_hihat, …): the mean and spread its hits measure, in ms "
        "relative to the swung grid. Declared timing wins over the model's: the model only decides which hits "
        "sit early or late. Instruments not listed get the GMD genres' measured feel × model_timing_scale.",
    )
    ghost_note_probability: float = Field(
        0.0, ge=0, le=1, description="Chance that an empty off-beat 16th gets a ghost snare hit."
    )
    ghost_velocity_range: tuple[int, int] = Field((20, 40), description="MIDI velocity range of ghost notes.")
    velocity_std: float = Field(
        0.0, ge=0, le=30, description="Standard deviation of added velocity noise (MIDI units)."
    )
    model_timing_scale: float = Field(
        1.0,
        ge=0,
        le=1,
        description="For instruments not in microtiming_ms: share of the GMD genres' measured timing (mean and "
        "spread, gmd_feel.json) kept (1 = as the dataset's drummers, 0 = on the swung grid).",
    )
    velocity_floor: int = Field(
        20, ge=1, le=60, description="No hit (ghost notes included) is quieter than this MIDI velocity."
    )
    velocity_min: dict[str, int] = Field(
        default_factory=lambda: {"crash": 72},
        description="Per drum class, the lowest MIDI velocity of a full stroke (crashes never fade to a tap).",
    )
    downbeat_kick_min: int = Field(
        80, ge=1, le=127, description="Lowest MIDI velocity of the kick on a bar's first step."
    )

    @field_validator("microtiming_ms")
    @classmethod
    def _known_instruments(cls, value: dict[str, Timing]) -> dict[str, Timing]:
        unknown = sorted(set(value) - set(DRUM_CLASSES))
        if unknown:
            raise ValueError(f"unknown instrument(s) {unknown}; valid: {list(DRUM_CLASSES)}")
        return value

    @field_validator("velocity_min")
    @classmethod
    def _velocity_minimums(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(DRUM_CLASSES))
        if unknown:
            raise ValueError(f"unknown instrument(s) {unknown}; valid: {list(DRUM_CLASSES)}")
        if any(not 1 <= v <= 127 for v in value.values()):
            raise ValueError("velocities must be 1–127")
        return value

    @field_validator("ghost_velocity_range")
    @classmethod
    def _velocity_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not 1 <= low <= high <= 127:
            raise ValueError("must be [low, high] with 1 <= low <= high <= 127")
        return value


class HihatRolls(_Strict):
    """Trap-style hi-hat rolls: per bar, with ``probability``, one beat of the bar's second half becomes a roll
    whose subdivision is drawn with the relative weights below."""

    probability: float = Field(0.5, ge=0, le=1, description="Chance per bar of one hi-hat roll.")
    sixteenth: float = Field(1.0, ge=0, description="Relative weight of a 16th-note roll.")
    thirty_second: float = Field(1.0, ge=0, description="Relative weight of a 32nd-note roll.")
    triplet: float = Field(1.0, ge=0, description="Relative weight of a 16th-triplet roll (6 per beat).")

    @model_validator(mode="after")
    def _some_weight(self) -> HihatRolls:
        if self.sixteenth + self.thirty_second + self.triplet <= 0:
            raise ValueError("at least one of sixteenth, thirty_second, triplet must be > 0")
        return self


class Rules(_Strict):
    """Pattern rules applied to the model's grid (see ``arrange.py``)."""

    backbeat: bool = Field(
        False, description="Snare on the backbeats (2 and 4 of 4/4); other loud snares outside fills turn to ghosts."
    )
    half_time_snare: bool = Field(False, description="One backbeat per bar, in the middle (beat 3 of 4/4).")
    one_drop: bool = Field(False, description="Reggae one-drop: no kick on beat 1; kick and snare on beat 3.")
    four_on_the_floor: bool = Field(False, description="Kick on every beat.")
    hihat_grid: int | None = Field(None, description="Steady closed hi-hat on every 8th (8) or 16th (16).")
    hihat_rolls: HihatRolls | None = Field(None, description="16th/32nd/triplet hi-hat rolls.")
    kick_density: float = Field(1.0, ge=0, le=1, description="Fraction of the model's kicks kept (not the downbeat's).")
    cross_stick: bool = Field(False, description="Backbeat snare played as cross-stick (GM 37 Side Stick).")
    ride_instead_of_hihat: bool = Field(False, description="Time kept on the ride cymbal instead of the hi-hat.")

    @field_validator("hihat_grid")
    @classmethod
    def _grid(cls, value: int | None) -> int | None:
        if value not in (None, 8, 16):
            raise ValueError("must be 8, 16 or null")
        return value


class Style(_Strict):
    name: str = Field(min_length=1, max_length=60)
    model_id: str = Field("groove-transformer", min_length=1, description="Drum model this style generates with.")
    description: str = Field(min_length=1)
    preferred_tempo_range: tuple[float, float] = Field(description="[min, max] BPM this style sounds right at.")
    conditioning: dict[str, float] = Field(description="GMD style -> weight, e.g. {hiphop: 0.7, soul: 0.3}.")
    humanization: Humanization = Field(default_factory=Humanization)
    rules: Rules = Field(default_factory=Rules)

    @field_validator("preferred_tempo_range")
    @classmethod
    def _tempo_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 20 <= low <= high <= 400:
            raise ValueError("must be [min_bpm, max_bpm] with 20 <= min <= max <= 400")
        return value

    @field_validator("conditioning")
    @classmethod
    def _conditioning(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("needs at least one GMD style")
        unknown = sorted(set(value) - set(GMD_STYLE_LABELS))
        if unknown:
            raise ValueError(f"unknown GMD style(s) {unknown}; valid: {list(GMD_STYLE_LABELS)}")
        if any(weight <= 0 for weight in value.values()):
            raise ValueError("weights must be > 0")
        return value

    @property
    def key(self) -> str:
        return normalize_style_name(self.name)


class StyleCatalog(BaseModel):
    """The effective list of styles (built-in ones, then user additions; user styles replace same-named ones)."""

    styles: list[Style]

    @property
    def names(self) -> list[str]:
        return [style.name for style in self.styles]

    def get(self, name: str) -> Style:
        """The style called ``name`` (case/space/underscore/hyphen-insensitive). Raises KeyError listing valid names."""
        key = normalize_style_name(name)
        for style in self.styles:
            if style.key == key:
                return style
        raise KeyError(f"unknown producer style {name!r}; valid styles: {', '.join(self.names)}")


def _read_styles_file(path: Path) -> list[Style]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StyleCatalogError(f"drum styles file {path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise StyleCatalogError(f"drum styles file {path}: invalid YAML: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("styles"), list):
        raise StyleCatalogError(f"drum styles file {path}: expected a mapping with a list under 'styles'")
    styles: list[Style] = []
    seen: set[str] = set()
    for index, entry in enumerate(document["styles"]):
        label = entry.get("name") if isinstance(entry, dict) else None
        label = repr(label) if label else f"#{index + 1}"
        try:
            style = Style.model_validate(entry)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '(entry)'}: {error['msg']}" for error in exc.errors()
            )
            raise StyleCatalogError(f"drum styles file {path}: style {label}: {problems}") from exc
        if style.key in seen:
            raise StyleCatalogError(f"drum styles file {path}: style {label}: duplicate name")
        seen.add(style.key)
        styles.append(style)
    return styles


def load_catalog(user_path: Path | None = None) -> StyleCatalog:
    """Load the built-in catalog and merge ``user_path`` (a YAML file with a ``styles:`` list) over it.

    Raises StyleCatalogError for an unreadable or invalid file (the message names file, style and field).
    """
    styles = _read_styles_file(BUILTIN_STYLES_PATH)
    if user_path is not None:
        by_key: dict[str, Any] = {style.key: style for style in styles}
        for style in _read_styles_file(Path(user_path).expanduser()):
            by_key[style.key] = style
        styles = list(by_key.values())
    return StyleCatalog(styles=styles)


@lru_cache(maxsize=16)
def _cached_catalog(user_path: Path | None, mtime_ns: int) -> StyleCatalog:
    return load_catalog(user_path)


def cached_catalog(user_path: Path | None = None) -> StyleCatalog:
    """:func:`load_catalog` of ``user_path``, kept in memory until that file's modification time changes.

    The returned catalog is shared between callers: read it, do not modify it. Raises StyleCatalogError
    like :func:`load_catalog`.
    """
    try:
        mtime_ns = Path(user_path).expanduser().stat().st_mtime_ns if user_path is not None else 0
    except OSError:
        mtime_ns = -1  # missing file: load_catalog raises (errors are not cached)
    return _cached_catalog(user_path, mtime_ns)


def catalog_for_settings(settings: Any | None) -> StyleCatalog:
    """The catalog of ``settings``' ``engines.drums.styles_path`` (cached); the built-in one if ``settings`` is None."""
    from cadenza.engines.drums.config import section

    return cached_catalog(section(settings).styles_path)


def reload_catalogues(settings: Any | None) -> dict[str, list[str]]:
    """``{"styles": [names]}`` read afresh from the built-in file and ``engines.drums.styles_path`` (the
    hot-reload hook of ``ENGINE.catalogues``). Raises StyleCatalogError (a ValueError) when invalid."""
    from cadenza.engines.drums.config import section

    return {"styles": load_catalog(section(settings).styles_path).names}
