"""``arrangement.mid``: the track as a multitrack Standard MIDI File (type 1, 480 PPQ).

Track 0 (conductor) holds the tempo, time signature, key signature and one marker per section; each part is a
named track with its General MIDI program (drums on channel 10), pitch-bend range (RPN 0) where it glides, and
lyrics as ``lyrics`` meta events on the lead (karaoke style). ``part_midi`` writes one part with the
conductor track, for rendering that part alone.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import mido

from cadenza.engines.track.parts import PPQ, PartNotes, bar_ticks
from cadenza.engines.track.plan import Plan
from cadenza.music.keys import midi_key_signature
from cadenza.music.midi import TEXT_CHARSET

DRUM_CHANNEL = 9


def _channels(parts: Sequence[PartNotes]) -> dict[str, int]:
    free = [c for c in range(16) if c != DRUM_CHANNEL]
    channels, index = {}, 0
    for part in parts:
        if part.program is None:
            channels[part.name] = DRUM_CHANNEL
        else:
            channels[part.name] = free[index % len(free)]
            index += 1
    return channels


def _absolute(events: list[tuple[int, int, mido.Message | mido.MetaMessage]], end: int) -> mido.MidiTrack:
    """Events at absolute ticks (sorted by tick, then the given order key) as a track ending at ``end``."""
    track = mido.MidiTrack()
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    return track


def conductor(plan: Plan, end: int, title: str) -> mido.MidiTrack:
    numerator, denominator = plan.meter
    events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = [
        (0, 0, mido.MetaMessage("track_name", name=title)),
        (0, 1, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(plan.tempo_bpm))),
        (0, 2, mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator,
                                clocks_per_click=24 if denominator == 4 else 36, notated_32nd_notes_per_beat=8)),
    ]  # fmt: skip
    signature = midi_key_signature(plan.key)
    if signature is not None:
        events.append((0, 3, mido.MetaMessage("key_signature", key=signature)))
    length = bar_ticks(plan)
    for section in plan.sections:
        events.append((section.start_bar * length, 4, mido.MetaMessage("marker", text=section.name)))
    return _absolute(events, end)


def part_track(part: PartNotes, channel: int, end: int, label: str) -> mido.MidiTrack:
    events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = [
        (0, 0, mido.MetaMessage("track_name", name=label))
    ]
    if part.program is not None:
        events.append((0, 1, mido.Message("program_change", channel=channel, program=part.program)))
    if part.bend_range != 2:
        for order, (control, value) in enumerate(((101, 0), (100, 0), (6, part.bend_range), (38, 0))):
            events.append((0, 2 + order, mido.Message("control_change", channel=channel, control=control, value=value)))
    for tick, text in part.lyrics:
        events.append((tick, 6, mido.MetaMessage("lyrics", text=text)))
    for tick, value in part.bends:
        events.append(
            (min(tick, end), 7, mido.Message("pitchwheel", channel=channel, pitch=max(-8192, min(8191, value))))
        )
    for tick, duration, pitch, velocity in part.notes:
        stop = min(tick + duration, end)
        events.append((stop, 5, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
        events.append((tick, 8, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
    return _absolute(events, end)


def _bytes(midi: mido.MidiFile) -> bytes:
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def arrangement_midi(plan: Plan, parts: Sequence[PartNotes], labels: dict[str, str], title: str) -> bytes:
    """The whole arrangement (conductor + one track per part, named ``labels[part.name]``)."""
    end = plan.bars * bar_ticks(plan)
    channels = _channels(parts)
    midi = mido.MidiFile(type=1, ticks_per_beat=PPQ, charset=TEXT_CHARSET)
    midi.tracks.append(conductor(plan, end, title))
    for part in parts:
        midi.tracks.append(part_track(part, channels[part.name], end, labels[part.name]))
    return _bytes(midi)


def part_midi(plan: Plan, part: PartNotes, all_parts: Sequence[PartNotes]) -> bytes:
    """One part with the conductor track (its channel as in the arrangement), for rendering it alone."""
    end = plan.bars * bar_ticks(plan)
    midi = mido.MidiFile(type=1, ticks_per_beat=PPQ, charset=TEXT_CHARSET)
    midi.tracks.append(conductor(plan, end, part.name))
    midi.tracks.append(part_track(part, _channels(all_parts)[part.name], end, part.name))
    return _bytes(midi)
