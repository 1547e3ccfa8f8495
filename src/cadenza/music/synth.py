"""MIDI → audio with a General MIDI SoundFont.

The synthesizer is TinySoundFont (MIT; Bernhard Schelling's C library through the ``tinysoundfont`` bindings,
Nathan Whitehead), driven event by event from the MIDI file (mido gives each event's time in seconds, tempo
changes applied). symusic 0.5.9's built-in synthesizer renders many TimGM6mb programs out of tune (the organ
4 semitones flat, the synth pad a fifth sharp, the acoustic bass 3 semitones flat; symusic issue #55), so it is
only the fallback when ``tinysoundfont`` is not installed (``make install`` installs it; with pip:
``pip install --no-deps tinysoundfont``, as its ``pyaudio`` dependency is for live playback only).

Default SoundFont: TimGM6mb.sf2 (GPL-2), shipped inside the pretty_midi package. Any ``.sf2``/``.sf3``
path works (an engine's ``soundfont_path`` setting). Rendering is deterministic: same MIDI + SoundFont → same samples.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import mido
import numpy as np
import symusic

from cadenza.music.audio import OUTPUT_FORMATS, open_writer

DEFAULT_SAMPLE_RATE = 44100
PEAK_TARGET = 10 ** (-1.0 / 20)  # -1 dBFS: peak-normalised with headroom so encoders do not clip


def default_soundfont() -> Path:
    """Path of TimGM6mb.sf2 inside the installed pretty_midi package."""
    import pretty_midi

    return Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"


def resolve_soundfont(soundfont_path: Path | None) -> Path:
    """The SoundFont to use: ``soundfont_path`` if given, else :func:`default_soundfont`.

    Raises FileNotFoundError if the file does not exist, ValueError if it is not a ``.sf2``/``.sf3`` SoundFont.
    """
    path = Path(soundfont_path).expanduser() if soundfont_path is not None else default_soundfont()
    if path.suffix.lower() not in (".sf2", ".sf3"):
        raise ValueError(f"SoundFont must be a .sf2 or .sf3 file, got {path}")
    if not path.is_file():
        raise FileNotFoundError(f"SoundFont not found: {path}")
    with path.open("rb") as handle:
        header = handle.read(12)
    if header[:4] != b"RIFF" or header[8:12] != b"sfbk":  # SoundFont 2.04 spec: a RIFF file of form 'sfbk'
        raise ValueError(f"{path} is not a SoundFont (no RIFF 'sfbk' header)")
    return path


def render_midi(
    midi: bytes | Path,
    soundfont_path: Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    normalize: bool = True,
) -> np.ndarray:
    """Render a Standard MIDI File (bytes or path) to stereo audio.

    Returns ``(2, samples)`` float32, at least as long as the file (its end-of-track), with the release
    tail of the last notes, peak-normalised to -1 dBFS unless ``normalize`` is False (all zeros if the MIDI
    has no notes).
    Raises FileNotFoundError / ValueError for a bad SoundFont (see :func:`resolve_soundfont`).
    """
    sf_path = resolve_soundfont(soundfont_path)
    data = midi if isinstance(midi, bytes) else Path(midi).read_bytes()
    try:
        audio = _render_tinysoundfont(data, sf_path, sample_rate)
    except ImportError:
        score = symusic.Score.from_midi(data)
        synth = symusic.Synthesizer(str(sf_path), sample_rate=sample_rate)
        audio = np.asarray(synth.render(score, stereo=True), dtype=np.float32)
    # At least as long as the file (end-of-track included), so a preview of N bars loops cleanly.
    length = math.ceil(mido.MidiFile(file=io.BytesIO(data)).length * sample_rate)
    if audio.shape[1] < length:
        audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
    audio = np.ascontiguousarray(audio)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0 and normalize:
        audio *= np.float32(PEAK_TARGET / peak)
    return audio


def write_preview(path: Path, audio: np.ndarray, sample_rate: int, output_format: str) -> Path:
    """Write ``(channels, samples)`` float32 audio as ``wav``/``flac`` (PCM 16-bit) or ``mp3`` (320 kbps CBR).

    Raises ValueError for an unknown format.
    """
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown preview format {output_format!r}; valid: {', '.join(OUTPUT_FORMATS)}")
    with open_writer(Path(path), sample_rate, audio.shape[0], output_format, "PCM_16") as handle:
        handle.write(np.ascontiguousarray(audio.T))
    return Path(path)


def media_type(output_format: str) -> str:
    """Media type of a preview format (``audio/wav``, ``audio/flac``, ``audio/mpeg``)."""
    return OUTPUT_FORMATS[output_format][1]


RELEASE_TAIL_S = 3.0  # rendered past the last event, so releases ring out (callers trim or fold it)
DRUM_CHANNEL = 9


def _render_tinysoundfont(data: bytes, sf_path: Path, sample_rate: int) -> np.ndarray:
    """``(2, samples)`` float32 of a Standard MIDI File through TinySoundFont: note on/off, program changes
    (channel 10 is drums), control changes (RPN pitch-bend range included) and pitch bends, at their sample
    positions. Raises ImportError without ``tinysoundfont``, ValueError for an unreadable SoundFont."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate, gain=0.0)
    try:
        font = synth.sfload(str(sf_path))
    except Exception as exc:  # the bindings raise their own exception types for bad files
        raise ValueError(f"cannot read SoundFont {sf_path}: {exc}") from exc
    for channel in range(16):
        synth.program_select(channel, font, 0, 0, channel == DRUM_CHANNEL)
    chunks: list[np.ndarray] = []
    done = 0
    now_s = 0.0

    def advance(until: int) -> None:
        nonlocal done
        if until > done:
            chunks.append(np.frombuffer(synth.generate(until - done), dtype=np.float32).copy())
            done = until

    for message in mido.MidiFile(file=io.BytesIO(data)):
        now_s += message.time
        if message.is_meta:
            continue
        advance(round(now_s * sample_rate))
        kind = message.type
        if kind == "note_on" and message.velocity > 0:
            synth.noteon(message.channel, message.note, message.velocity)
        elif kind in ("note_on", "note_off"):
            synth.noteoff(message.channel, message.note)
        elif kind == "program_change":
            if message.channel != DRUM_CHANNEL:
                synth.program_change(message.channel, message.program)
        elif kind == "control_change":
            synth.control_change(message.channel, message.control, message.value)
        elif kind == "pitchwheel":
            synth.pitchbend(message.channel, message.pitch + 8192)
    advance(done + round(RELEASE_TAIL_S * sample_rate))
    stereo = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(stereo.reshape(-1, 2).T)
