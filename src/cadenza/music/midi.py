"""Standard MIDI File writing for drum parts and melodies (mido).

One track (SMF type 0) on General MIDI channel 10 with a track name, a tempo and a time-signature
event, then the notes. The end-of-track event sits exactly at ``total_ticks`` so the file is exactly
as long as the requested bars. Same input → same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import mido

from cadenza.music.drum_map import DRUM_CHANNEL

DEFAULT_PPQ = 480
#: Meta text (track names, lyrics, markers) is written as UTF-8, which DAWs commonly read (the SMF 1.0
#: specification leaves the text encoding open; mido's default, Latin-1, cannot carry an emoji or Japanese).
TEXT_CHARSET = "utf-8"
DRUM_NOTE_TICKS_PER_QUARTER = 8  # a drum note lasts a 32nd note (ppq / 8 ticks) unless the next hit comes sooner


@dataclass(frozen=True, order=True)
class DrumNote:
    """One drum hit: absolute ``tick`` (PPQ units from the start), General MIDI ``pitch``, ``velocity`` 1–127,
    and ``duration_ticks`` (None: a 32nd note)."""

    tick: int
    pitch: int
    velocity: int
    duration_ticks: int | None = None


def ticks_per_bar(numerator: int, denominator: int, ppq: int = DEFAULT_PPQ) -> int:
    """Length of one bar in ticks: numerator × (4 / denominator) quarter notes × ``ppq``."""
    return numerator * ppq * 4 // denominator


def is_compound(numerator: int, denominator: int) -> bool:
    """Compound x/8 meter (3/8, 6/8, 9/8, 12/8): beats are dotted quarters of three eighths."""
    return denominator == 8 and numerator % 3 == 0


def time_signature_message(numerator: int, denominator: int) -> mido.MetaMessage:
    """The SMF time-signature meta event; the metronome clicks on the beat (dotted beat in compound meters).

    ``clocks_per_click`` counts MIDI clocks (24 per quarter note, MIDI 1.0 spec); 32nds per quarter is 8.
    """
    clocks = 96 // denominator * (3 if is_compound(numerator, denominator) else 1)
    return mido.MetaMessage(
        "time_signature",
        numerator=numerator,
        denominator=denominator,
        clocks_per_click=clocks,
        notated_32nd_notes_per_beat=8,
        time=0,
    )


def drum_midi_bytes(
    notes: Iterable[DrumNote],
    *,
    tempo_bpm: float,
    numerator: int,
    denominator: int,
    total_ticks: int,
    ppq: int = DEFAULT_PPQ,
    track_name: str = "Drums",
) -> bytes:
    """Encode drum notes as a Standard MIDI File (type 0, channel 10) and return its bytes.

    ``tempo_bpm`` is quarter notes per minute (the SMF tempo unit). Notes are clamped to
    ``[0, total_ticks - 1]``; two hits of one pitch on one tick keep the louder one. Each note lasts its
    ``duration_ticks`` (default a 32nd note), at least 1 tick, but never past the next hit of the same pitch
    nor past ``total_ticks``, where the end-of-track event is. Raises ValueError for a non-positive
    ``total_ticks``, a pitch outside 0–127 or a velocity outside 1–127.
    """
    if total_ticks <= 0:
        raise ValueError(f"total_ticks must be > 0, got {total_ticks}")
    loudest: dict[tuple[int, int], int] = {}
    lengths: dict[tuple[int, int], int] = {}
    default_length = max(1, ppq // DRUM_NOTE_TICKS_PER_QUARTER)
    for note in notes:
        if not 0 <= note.pitch <= 127:
            raise ValueError(f"MIDI pitch must be 0–127, got {note.pitch}")
        if not 1 <= note.velocity <= 127:
            raise ValueError(f"MIDI velocity must be 1–127, got {note.velocity}")
        tick = min(max(int(note.tick), 0), total_ticks - 1)
        key = (tick, note.pitch)
        if note.velocity >= loudest.get(key, 0):
            lengths[key] = max(1, int(note.duration_ticks or default_length))
        loudest[key] = max(loudest.get(key, 0), note.velocity)

    by_pitch: dict[int, list[int]] = {}
    for tick, pitch in sorted(loudest):
        by_pitch.setdefault(pitch, []).append(tick)
    # (tick, kind 0 = note off before kind 1 = note on at the same tick, pitch, velocity)
    events: list[tuple[int, int, int, int]] = []
    for pitch, ticks in by_pitch.items():
        for i, tick in enumerate(ticks):
            next_tick = ticks[i + 1] if i + 1 < len(ticks) else total_ticks
            end = min(tick + lengths[(tick, pitch)], next_tick, total_ticks)
            events.append((tick, 1, pitch, loudest[(tick, pitch)]))
            events.append((end, 0, pitch, 0))
    events.sort()

    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=track_name, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(time_signature_message(numerator, denominator))
    now = 0
    for tick, kind, pitch, velocity in events:
        message = "note_on" if kind else "note_off"
        track.append(mido.Message(message, channel=DRUM_CHANNEL, note=pitch, velocity=velocity, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=total_ticks - now))
    midi = mido.MidiFile(type=0, ticks_per_beat=ppq, charset=TEXT_CHARSET)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def write_drum_midi(path: Path, notes: Iterable[DrumNote], **kwargs: object) -> Path:
    """Write :func:`drum_midi_bytes` to ``path`` (same keyword arguments) and return ``path``."""
    data = drum_midi_bytes(notes, **kwargs)  # type: ignore[arg-type]
    Path(path).write_bytes(data)
    return Path(path)


def melody_midi_bytes(
    notes: Iterable[tuple[int, int, int, int]],
    *,
    tempo_bpm: float,
    numerator: int,
    denominator: int,
    total_ticks: int,
    program: int,
    key_name: str | None = None,
    ppq: int = DEFAULT_PPQ,
    track_name: str = "Melody",
) -> bytes:
    """One melodic track (SMF type 0, channel 1) of (tick, duration_ticks, pitch, velocity) notes: track name,
    tempo, time signature, optional key signature (mido's names: ``"D"``, ``"Em"``), General MIDI ``program``
    (0–127), then the notes; end of track at ``total_ticks``. Raises ValueError for bad values."""
    if total_ticks <= 0 or not 0 <= program <= 127:
        raise ValueError("total_ticks must be > 0 and program 0–127")
    events: list[tuple[int, int, int, int]] = []  # tick, kind (0 off before 1 on), pitch, velocity
    for tick, duration, pitch, velocity in notes:
        if not 0 <= pitch <= 127 or not 1 <= velocity <= 127 or duration <= 0:
            raise ValueError(f"bad note: pitch {pitch}, velocity {velocity}, duration {duration}")
        events.append((tick, 1, pitch, velocity))
        events.append((min(tick + duration, total_ticks), 0, pitch, 0))
    events.sort()
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=track_name, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(time_signature_message(numerator, denominator))
    if key_name:
        track.append(mido.MetaMessage("key_signature", key=key_name, time=0))
    track.append(mido.Message("program_change", channel=0, program=program, time=0))
    now = 0
    for tick, kind, pitch, velocity in events:
        kind_name = "note_on" if kind else "note_off"
        track.append(mido.Message(kind_name, channel=0, note=pitch, velocity=velocity, time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, total_ticks - now)))
    midi = mido.MidiFile(type=0, ticks_per_beat=ppq, charset=TEXT_CHARSET)
    midi.tracks.append(track)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def meter_from_text(value: object) -> object:
    """A time signature given as text (``"6/8"``, a form field or query value, alone or in a one-item list) as
    ``[numerator, denominator]`` strings for a Pydantic ``tuple[int, int]`` field; anything else unchanged."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str) and "/" in value:
        numerator, _, denominator = value.partition("/")
        return [numerator.strip(), denominator.strip()]
    return value
