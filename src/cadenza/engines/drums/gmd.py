"""The Groove MIDI Dataset's genre labels (light to import: the style catalog validates against them)."""

from __future__ import annotations

GMD_STYLES: tuple[str, ...] = (
    "rock",
    "funk",
    "hiphop",
    "jazz",
    "latin",
    "afrocuban",
    "punk",
    "neworleans",
    "soul",
    "country",
    "pop",
    "reggae",
    "gospel",
    "afrobeat",
    "dance",
    "blues",
    "highlife",
    "middleeastern",
)
