"""One bounded reader for every MIDI file a user sends (drums ``reference_midi``, melody ``seed_midi``, …).

A Standard MIDI File is small on disk but can describe a huge piece: one note at tick 2^28 with a division
of 1 is 52 bytes, and a reader that allocates per tick or per step up to the file's last event takes
gigabytes. :func:`read_midi` therefore refuses, before any per-tick work and with a message naming the
limit, files that break one of :class:`MidiLimits`:

* the chunk structure (SMF 1.0, section 2): an ``MThd`` header of at least 6 bytes, format 0, 1 or 2, a
  metrical division (ticks per quarter note) that is positive (SMPTE divisions are refused), every chunk
  complete (a cut file is refused) and at most ``max_tracks`` ``MTrk`` chunks;
* ``max_bytes`` of file, ``max_events`` kept events (notes, controllers, pitch bends, pedals, tempo, meter,
  key, marker and lyric events), ``max_notes`` notes;
* ``max_span_quarters``: the last event's tick over the division, i.e. how many quarter notes the file
  spans (a sparse file with far-apart notes spans millions);
* tempo values within ``min_tempo_bpm``–``max_tempo_bpm`` (a tempo event of 0 µs per quarter is infinite);
* time signatures with a positive numerator and a power-of-two denominator.

Events are parsed by symusic (its MiniMidi reader bounds-checks every event against the chunk; about 16
bytes a note), so memory is proportional to the file's size, which ``max_bytes`` caps. Engines then keep
the first bars with :func:`first_bars`, so their work is proportional to what they keep, never to the
file's last tick.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import symusic

MIB = 1024 * 1024


@dataclass(frozen=True)
class MidiLimits:
    """What one MIDI input may hold. Defaults suit a reference groove or a melody seed."""

    max_bytes: int = MIB
    max_tracks: int = 64
    max_events: int = 100_000
    max_notes: int = 20_000
    max_span_quarters: int = 16_384  # 4,096 bars of 4/4: 34 minutes at 120 BPM
    min_tempo_bpm: float = 1.0
    max_tempo_bpm: float = 1_000.0


class MidiRejected(ValueError):
    """A MIDI input that cannot be used. ``limit`` names what it broke (a :class:`MidiLimits` field,
    ``division``, ``tempo_bpm`` or ``time_signature``; the message ends with it), or is None for a file
    that is not a well-formed Standard MIDI File."""

    def __init__(self, message: str, limit: str | None = None) -> None:
        super().__init__(f"{message} (limit: {limit})" if limit else message)
        self.limit = limit


def check_structure(data: bytes, name: str, limits: MidiLimits) -> int:
    """Walk the chunks of a Standard MIDI File without parsing events. Returns the division (ticks per
    quarter note). Raises MidiRejected for a size over ``max_bytes``, a bad header, a non-positive or SMPTE
    division, a chunk cut short or more ``MTrk`` chunks than ``max_tracks``."""
    if len(data) > limits.max_bytes:
        raise MidiRejected(f"{name} is {len(data):,} bytes; at most {limits.max_bytes:,} are accepted", "max_bytes")
    if not data.startswith(b"MThd"):
        raise MidiRejected(f"{name} is not a Standard MIDI File (it does not start with 'MThd')")
    if len(data) < 14:
        raise MidiRejected(f"{name} cannot be read as MIDI: the file ends inside its header")
    header_length, fmt, _, division = struct.unpack(">IHHh", data[4:14])
    if header_length < 6:
        raise MidiRejected(f"{name} cannot be read as MIDI: its header chunk is {header_length} bytes (6 expected)")
    if fmt > 2:
        raise MidiRejected(f"{name} has MIDI file format {fmt}; formats 0, 1 and 2 are accepted")
    if division < 0:
        raise MidiRejected(
            f"{name} uses an SMPTE time division; only metrical divisions (ticks per quarter note) are accepted",
            "division",
        )
    if division == 0:
        raise MidiRejected(f"{name} has a time division of 0 ticks per quarter note; it must be positive", "division")
    position, tracks = 8 + header_length, 0
    while position < len(data):
        if position + 8 > len(data):
            raise MidiRejected(f"{name} cannot be read as MIDI: the file is cut inside a chunk header")
        chunk, length = data[position : position + 4], struct.unpack(">I", data[position + 4 : position + 8])[0]
        if position + 8 + length > len(data):
            raise MidiRejected(
                f"{name} cannot be read as MIDI: a {chunk!r} chunk declares {length:,} bytes but the file ends "
                f"{len(data) - position - 8:,} bytes into it (a cut file?)"
            )
        if chunk == b"MTrk":
            tracks += 1
            if tracks > limits.max_tracks:
                raise MidiRejected(
                    f"{name} has more than {limits.max_tracks} tracks; at most {limits.max_tracks} are accepted",
                    "max_tracks",
                )
        position += 8 + length
    if tracks == 0:
        raise MidiRejected(f"{name} has no track chunk ('MTrk')")
    return int(division)


def count_events(score: symusic.Score) -> tuple[int, int]:
    """``(events, notes)`` symusic kept from a file (a note counts once, not as note-on plus note-off)."""
    notes = sum(len(track.notes) for track in score.tracks)
    events = notes + sum(
        len(track.controls) + len(track.pitch_bends) + len(track.pedals) + len(track.lyrics) for track in score.tracks
    )
    events += len(score.tempos) + len(score.time_signatures) + len(score.key_signatures) + len(score.markers)
    return events, notes


def read_midi(source: bytes | Path, name: str, limits: MidiLimits | None = None) -> symusic.Score:
    """Parse a user's MIDI file within ``limits`` (module docstring) as a ``symusic.Score`` (tick units).

    ``name`` is how errors call the file (the input's name, e.g. ``"reference_midi"``). Raises MidiRejected
    saying what is wrong and, for a broken limit, which one (``MidiRejected.limit``).
    """
    limits = limits or MidiLimits()
    if isinstance(source, Path):
        size = source.stat().st_size
        if size > limits.max_bytes:
            raise MidiRejected(f"{name} is {size:,} bytes; at most {limits.max_bytes:,} are accepted", "max_bytes")
        source = source.read_bytes()
    division = check_structure(source, name, limits)
    try:
        score = symusic.Score.from_midi(source)
    except Exception as exc:  # symusic's MiniMidi raises RuntimeError for a malformed event
        raise MidiRejected(f"{name} cannot be read as MIDI: {exc}") from None
    events, notes = count_events(score)
    if notes > limits.max_notes:
        raise MidiRejected(f"{name} has {notes:,} notes; at most {limits.max_notes:,} are accepted", "max_notes")
    if events > limits.max_events:
        raise MidiRejected(f"{name} has {events:,} events; at most {limits.max_events:,} are accepted", "max_events")
    span = score.end() / division
    if span > limits.max_span_quarters:
        raise MidiRejected(
            f"{name} spans {span:,.0f} quarter notes (its last event is at tick {score.end():,} with "
            f"{division} ticks per quarter); at most {limits.max_span_quarters:,} are accepted",
            "max_span_quarters",
        )
    for tempo in score.tempos:
        bpm = 60_000_000 / tempo.mspq if tempo.mspq > 0 else float("inf")
        if not limits.min_tempo_bpm <= bpm <= limits.max_tempo_bpm:
            raise MidiRejected(
                f"{name} has a tempo of {bpm:g} BPM ({tempo.mspq} µs per quarter) at tick {tempo.time}; tempos "
                f"from {limits.min_tempo_bpm:g} to {limits.max_tempo_bpm:g} BPM are accepted",
                "tempo_bpm",
            )
    for signature in score.time_signatures:
        numerator, denominator = int(signature.numerator), int(signature.denominator)
        if numerator <= 0 or denominator <= 0 or denominator & (denominator - 1):
            raise MidiRejected(
                f"{name} has a time signature of {numerator}/{denominator} at tick {signature.time}; the numerator "
                "must be positive and the denominator a power of two",
                "time_signature",
            )
    return score


def first_meter(score: symusic.Score, default: tuple[int, int] = (4, 4)) -> tuple[int, int]:
    """The first time signature of a score read by :func:`read_midi` (``default`` where it has none)."""
    if len(score.time_signatures):
        signature = score.time_signatures[0]
        return int(signature.numerator), int(signature.denominator)
    return default


def first_bars(score: symusic.Score, n_bars: int, meter: tuple[int, int] | None = None) -> symusic.Score:
    """The notes and events of a score's first ``n_bars`` bars of ``meter`` (default: its first time
    signature), as a new score; notes starting later are dropped, notes starting inside keep their length.
    Costs time proportional to the events, never to the ticks the file spans."""
    numerator, denominator = meter or first_meter(score)
    bar = score.ticks_per_quarter * 4 * numerator // denominator
    return score.clip(0, n_bars * bar, clip_end=False)
