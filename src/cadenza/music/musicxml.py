"""MusicXML 4.0 (https://www.w3.org/2021/06/musicxml40/) of a monophonic melody, written by music21.

music21 (BSD-3-Clause, an optional extra: ``pip install 'cadenza[notation]'``) builds the measures, ties notes
across bar lines, beams and spells accidentals against the key signature. Its writer stamps each file with
the day's date and random part ids; they are replaced here by fixed ones (``P1``, ``I1``), so the same notes
give the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from cadenza.music.keys import Key

_RANDOM_ID = re.compile(r'id="([PI])[0-9a-f]{32}"')


def available() -> bool:
    """Whether music21 is installed (``cadenza[notation]``)."""
    import importlib.util

    return importlib.util.find_spec("music21") is not None


def melody_musicxml(
    notes: Sequence[tuple[int, int, int]],
    *,
    key: Key,
    numerator: int,
    denominator: int,
    tempo_bpm: float,
    ticks_per_quarter: int,
    program: int,
    title: str,
    total_ticks: int,
) -> bytes:
    """MusicXML bytes of ``notes`` ((onset, duration, MIDI pitch) in ticks of ``ticks_per_quarter``,
    monophonic, sorted) in ``key`` and the meter, padded with rests to ``total_ticks``. ``program`` is the
    General MIDI program (0-based). Raises ImportError without music21."""
    from music21 import instrument, metadata, meter, note, stream, tempo
    from music21 import key as m21key
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    def quarters(ticks: int) -> Fraction:
        return Fraction(ticks, ticks_per_quarter)

    spelling = key.spelling()
    part = stream.Part()
    part.append(instrument.instrumentFromMidiProgram(program))
    part.append(meter.TimeSignature(f"{numerator}/{denominator}"))
    part.append(m21key.Key(key.tonic, key.mode))
    part.append(tempo.MetronomeMark(number=tempo_bpm, referent=note.Note(type="quarter")))
    cursor = 0
    for onset, duration, pitch in notes:
        if onset > cursor:
            part.append(note.Rest(quarterLength=quarters(onset - cursor)))
        part.append(note.Note(_spelled(pitch, spelling.get(pitch % 12)), quarterLength=quarters(duration)))
        cursor = onset + duration
    if total_ticks > cursor:
        part.append(note.Rest(quarterLength=quarters(total_ticks - cursor)))
    score = stream.Score()
    score.metadata = metadata.Metadata(title=title, composer="Cadenza")
    score.append(part)
    score.makeNotation(inPlace=True)
    data = GeneralObjectExporter(score).parse().decode()
    data = re.sub(r"\s*<encoding-date>[^<]*</encoding-date>", "", data)
    data = _RANDOM_ID.sub(lambda m: f'id="{m.group(1)}1"', data)
    return data.encode()


def _spelled(midi: int, name: str | None) -> object:
    """A music21 Pitch of MIDI ``midi`` spelled ``name`` (``"Cb"``: its octave number may differ from the
    sounding pitch's, as Cb4 sounds B3); music21's default spelling without a name."""
    from music21 import pitch

    if name is None:
        return pitch.Pitch(midi=midi)
    spelled = pitch.Pitch(name)
    spelled.octave = midi // 12 - 1
    spelled.octave += round((midi - spelled.midi) / 12)
    return spelled
