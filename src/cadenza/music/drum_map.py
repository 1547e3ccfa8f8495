"""General MIDI drum map and the 9 drum classes used by the drums engine.

The class reduction is GrooVAE's mapping of the Roland TD-11 kit used to record the Groove MIDI
Dataset (Gillick et al., "Learning to Groove with Inverse Sequence Transformations", ICML 2019;
Magenta ``ROLAND_DRUM_PITCH_CLASSES``). It covers all 22 pitches the kit writes, including 22
(closed hi-hat edge) and 26 (open hi-hat edge), which lie outside the General MIDI drum map.
Output pitches are General MIDI Level 1 percussion keys (MIDI 1.0 spec, channel 10).
"""

from __future__ import annotations

DRUM_CHANNEL = 9  # 0-based; "channel 10" in the MIDI spec's 1-based numbering

DRUM_CLASSES: tuple[str, ...] = (
    "kick",
    "snare",
    "closed_hihat",
    "open_hihat",
    "low_tom",
    "mid_tom",
    "high_tom",
    "crash",
    "ride",
)
N_CLASSES = len(DRUM_CLASSES)

# Roland TD-11 pitches (GMD) per class, after Magenta's ROLAND_DRUM_PITCH_CLASSES.
ROLAND_PITCHES_BY_CLASS: tuple[tuple[int, ...], ...] = (
    (36,),  # kick
    (38, 37, 40),  # snare head, cross-stick, rim
    (42, 22, 44),  # hi-hat closed bow, closed edge, pedal
    (46, 26),  # hi-hat open bow, open edge
    (43, 58),  # floor tom head, rim
    (47, 45),  # tom 2 rim, head
    (50, 48),  # tom 1 rim, head
    (49, 52, 55, 57),  # crash 1/2 bow and edge
    (51, 53, 59),  # ride bow, bell, edge
)

# Other General MIDI percussion keys, mapped by instrument family so foreign MIDI seeds still parse.
_EXTRA_GM: dict[int, int] = {35: 0, 39: 1, 41: 4, 54: 2, 56: 1, 69: 2, 70: 2}

PITCH_TO_CLASS: dict[int, int] = {
    pitch: cls for cls, pitches in enumerate(ROLAND_PITCHES_BY_CLASS) for pitch in pitches
} | _EXTRA_GM

# General MIDI key written on output for each class.
GM_PITCH: tuple[int, ...] = (36, 38, 42, 46, 43, 47, 50, 49, 51)

GM_NAMES: dict[int, str] = {
    35: "Acoustic Bass Drum",
    36: "Bass Drum 1",
    37: "Side Stick",
    38: "Acoustic Snare",
    39: "Hand Clap",
    40: "Electric Snare",
    41: "Low Floor Tom",
    42: "Closed Hi-Hat",
    43: "High Floor Tom",
    44: "Pedal Hi-Hat",
    45: "Low Tom",
    46: "Open Hi-Hat",
    47: "Low-Mid Tom",
    48: "Hi-Mid Tom",
    49: "Crash Cymbal 1",
    50: "High Tom",
    51: "Ride Cymbal 1",
    52: "Chinese Cymbal",
    53: "Ride Bell",
    54: "Tambourine",
    55: "Splash Cymbal",
    56: "Cowbell",
    57: "Crash Cymbal 2",
    59: "Ride Cymbal 2",
}


def pitch_class(pitch: int) -> int | None:
    """Drum class index (0–8) of a MIDI percussion key, or None for keys no class covers."""
    return PITCH_TO_CLASS.get(pitch)
