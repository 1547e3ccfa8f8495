"""A generator of corrupt and hostile upload files (audio and MIDI), written fresh by each test run.

Nothing here is committed as binaries: :func:`audio_corpus` and :func:`midi_corpus` build valid seed
files with soundfile/PyAV/mido, then derive from them files truncated at many offsets, with wrong magic
numbers, with flipped bytes, with lying headers (channels, sample rates, bit depths, sizes), with
extreme but valid shapes (channels, rates, durations), with NaN/±Inf samples, empty and tiny files,
and files of other types. Every item has a stable ``name`` saying what it is; the same ``seed`` gives
the same bytes.
"""

from __future__ import annotations

import io
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import midi_hostile
import mido
import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class Item:
    """One corpus file: ``name`` says what it is; ``filename`` is the upload's file name."""

    name: str
    data: bytes
    filename: str


# ----------------------------------------------------------------------------------------- audio seeds


def _tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    """``(frames, channels)`` float32: a chord with a pulse, loud enough not to be silent."""
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 331 * t) * np.exp(-8 * (t % 0.25))
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32)


def _sf_bytes(x: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _av_bytes(x: np.ndarray, rate: int, fmt: str) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "stereo" if x.shape[1] == 2 else "mono"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T), format="fltp", layout=stream.layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buf.getvalue()


def audio_seeds() -> dict[str, tuple[bytes, str]]:
    """Valid short files of every accepted format: ``name -> (bytes, extension)``."""
    x = _tone(0.5, 22050, 2)
    seeds = {
        "wav-pcm16": (_sf_bytes(x, 22050, "WAV", "PCM_16"), ".wav"),
        "wav-float": (_sf_bytes(x, 22050, "WAV", "FLOAT"), ".wav"),
        "flac": (_sf_bytes(x, 22050, "FLAC", "PCM_16"), ".flac"),
        "ogg-vorbis": (_sf_bytes(x, 22050, "OGG", "VORBIS"), ".ogg"),
        "mp3": (_sf_bytes(_tone(0.5, 44100, 2), 44100, "MP3", "MPEG_LAYER_III"), ".mp3"),
        "aiff": (_sf_bytes(x, 22050, "AIFF", "PCM_16"), ".aiff"),
    }
    try:
        seeds["aac-adts"] = (_av_bytes(_tone(0.5, 44100, 2), 44100, "adts"), ".aac")
        seeds["m4a"] = (_av_bytes(_tone(0.5, 44100, 2), 44100, "mp4"), ".m4a")
    except ImportError:  # PyAV is the optional 'formats' extra
        pass
    return seeds


def wav_header(
    *,
    channels: int,
    rate: int,
    bits: int,
    data_bytes: int,
    format_tag: int = 1,
    riff_bytes: int | None = None,
    byte_rate: int | None = None,
    block_align: int | None = None,
) -> bytes:
    """A 44-byte canonical RIFF/WAVE header with every field as given (lying is the point)."""
    align = block_align if block_align is not None else (channels * bits // 8) & 0xFFFF
    rate_bytes = byte_rate if byte_rate is not None else (rate * align) & 0xFFFFFFFF
    riff = riff_bytes if riff_bytes is not None else (36 + data_bytes) & 0xFFFFFFFF
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVEfmt "
        + struct.pack(
            "<IHHIIHH", 16, format_tag & 0xFFFF, channels & 0xFFFF, rate & 0xFFFFFFFF, rate_bytes, align, bits
        )
        + b"data"
        + struct.pack("<I", data_bytes & 0xFFFFFFFF)
    )


def _lying_wavs(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    body = bytes(rng.getrandbits(8) for _ in range(4096))
    for channels in (0, 3, 9, 64, 1024, 65535):
        yield f"wav-channels-{channels}", wav_header(channels=channels, rate=44100, bits=16, data_bytes=4096) + body
    for rate in (0, 1, 100, 192_001, 384_000, 768_000, 2**31, 2**32 - 1):
        yield f"wav-rate-{rate}", wav_header(channels=2, rate=rate, bits=16, data_bytes=4096) + body
    for bits in (0, 1, 7, 12, 48, 64, 65535):
        yield f"wav-bits-{bits}", wav_header(channels=2, rate=44100, bits=bits, data_bytes=4096) + body
    for tag in (0, 2, 3, 6, 0x55, 0xFFFE, 999):
        yield (
            f"wav-format-tag-{tag}",
            wav_header(channels=2, rate=44100, bits=16, data_bytes=4096, format_tag=tag) + body,
        )
    for size in (0, 1, 4095, 4097, 2**31, 2**32 - 1):
        yield f"wav-data-size-{size}", wav_header(channels=2, rate=44100, bits=16, data_bytes=size) + body
    for riff in (0, 4, 2**32 - 1):
        yield (
            f"wav-riff-size-{riff}",
            wav_header(channels=2, rate=44100, bits=16, data_bytes=4096, riff_bytes=riff) + body,
        )
    yield "wav-block-align-0", wav_header(channels=2, rate=44100, bits=16, data_bytes=4096, block_align=0) + body
    yield "wav-byte-rate-0", wav_header(channels=2, rate=44100, bits=16, data_bytes=4096, byte_rate=0) + body
    yield "wav-header-only", wav_header(channels=2, rate=44100, bits=16, data_bytes=4096)
    yield "wav-fmt-chunk-huge", b"RIFF\x00\x10\x00\x00WAVEfmt \xff\xff\xff\x7f" + body
    yield "wav-no-fmt", b"RIFF\x00\x10\x00\x00WAVEdata\x00\x10\x00\x00" + body


def _flac_streaminfo_lies(flac: bytes) -> Iterator[tuple[str, bytes]]:
    """FLAC whose STREAMINFO (bytes 8..42) claims other rates, channels and total samples."""
    info = int.from_bytes(flac[18:26], "big")  # rate(20) channels-1(3) bits-1(5) total(36)
    bits = (info >> 36) & 0x1F
    for name, rate, channels, total in (
        ("flac-claims-8ch-192k-899s", 192_000, 8, 192_000 * 899),
        ("flac-claims-655350hz", 655_350, 2, 11025),
        ("flac-claims-hours", 22050, 2, 22050 * 3600 * 10),
        ("flac-claims-zero-samples", 22050, 2, 0),
        ("flac-claims-max-samples", 22050, 2, 2**36 - 1),
    ):
        packed = (rate << 44) | ((channels - 1) << 41) | (bits << 36) | total
        yield name, flac[:18] + packed.to_bytes(8, "big") + flac[26:]


def _float_wavs() -> Iterator[tuple[str, bytes]]:
    x = _tone(0.25, 8000, 2)
    for label, value in (("nan", np.nan), ("pos-inf", np.inf), ("neg-inf", -np.inf)):
        bad = x.copy()
        bad[100, 0] = value
        yield f"wav-float-{label}", _sf_bytes(bad, 8000, "WAV", "FLOAT")
        yield f"wav-double-{label}", _sf_bytes(bad, 8000, "WAV", "DOUBLE")
    all_nan = np.full_like(x, np.nan)
    yield "wav-float-all-nan", _sf_bytes(all_nan, 8000, "WAV", "FLOAT")
    yield "wav-float-denormal", _sf_bytes(np.full_like(x, 1e-40), 8000, "WAV", "FLOAT")
    yield "wav-float-over-full-scale", _sf_bytes(x * 8.0, 8000, "WAV", "FLOAT")


def _extreme_wavs() -> Iterator[tuple[str, bytes]]:
    """Valid files of extreme shapes: many channels, very high and very low rates, one frame, silence."""
    yield "wav-9-channels", _sf_bytes(_tone(0.1, 8000, 9), 8000, "WAV", "PCM_16")
    yield "wav-8-channels", _sf_bytes(_tone(0.1, 8000, 8), 8000, "WAV", "PCM_16")
    yield "wav-384k", _sf_bytes(_tone(0.05, 384_000, 1), 384_000, "WAV", "PCM_16")
    yield "wav-192k", _sf_bytes(_tone(0.1, 192_000, 2), 192_000, "WAV", "PCM_24")
    yield "wav-mono-8k", _sf_bytes(_tone(0.5, 8000, 1), 8000, "WAV", "PCM_16")
    yield "wav-one-frame", _sf_bytes(_tone(1 / 8000, 8000, 2), 8000, "WAV", "PCM_16")
    yield "wav-silence", _sf_bytes(np.zeros((4000, 2), np.float32), 8000, "WAV", "PCM_16")
    yield "wav-dc-full-scale", _sf_bytes(np.ones((4000, 2), np.float32) * 0.999, 8000, "WAV", "PCM_16")
    yield "wav-u8", _sf_bytes(_tone(0.25, 8000, 1), 8000, "WAV", "PCM_U8")
    yield "wav-ulaw", _sf_bytes(_tone(0.25, 8000, 1), 8000, "WAV", "ULAW")


def _not_audio(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    yield "empty", b""
    yield "one-byte", b"\x00"
    yield "riff-only", b"RIFF"
    yield "text", b"this is not a song\n" * 10
    yield "json", b'{"producer_style": "J Dilla"}'
    yield "png", b"\x89PNG\r\n\x1a\n" + bytes(200)
    yield "zip", b"PK\x03\x04" + bytes(200)
    yield "pdf", b"%PDF-1.7\n" + bytes(200)
    yield "random-1k", bytes(rng.getrandbits(8) for _ in range(1024))
    yield "zeros-64k", bytes(65536)
    yield "adts-sync-garbage", b"\xff\xf1" + bytes(rng.getrandbits(8) for _ in range(2000))
    yield "id3-only", b"ID3\x04\x00\x00\x00\x00\x00\x00"
    yield "ogg-page-garbage", b"OggS" + bytes(rng.getrandbits(8) for _ in range(500))
    yield "ftyp-garbage", b"\x00\x00\x00\x18ftypM4A " + bytes(rng.getrandbits(8) for _ in range(500))


def _derived(name: str, data: bytes, rng: random.Random, cuts: int, flips: int) -> Iterator[tuple[str, bytes]]:
    """Truncations at ``cuts`` offsets (denser near the header), wrong magic numbers, flipped bytes."""
    n = len(data)
    offsets = sorted({*range(1, min(n, 64), 7), *(rng.randrange(1, n) for _ in range(cuts))})
    for cut in offsets[: cuts + 9]:
        yield f"{name}-cut-{cut}", data[:cut]
    for magic in (b"RIFF", b"fLaC", b"OggS", b"MThd", b"\x00\x00\x00\x00"):
        if not data.startswith(magic):
            yield f"{name}-magic-{magic.hex()}", magic + data[len(magic) :]
    for index in range(flips):
        corrupt = bytearray(data)
        for _ in range(8):
            corrupt[rng.randrange(min(n, 256) if index % 2 else n)] = rng.getrandbits(8)
        yield f"{name}-flip-{index}", bytes(corrupt)


def audio_corpus(seed: int = 0, cuts: int = 24, flips: int = 10) -> list[Item]:
    """Corrupt and hostile audio files (about 400 with the defaults), names prefixed ``audio-``."""
    rng = random.Random(seed)
    items: list[tuple[str, bytes, str]] = []
    seeds = audio_seeds()
    for name, (data, ext) in seeds.items():
        items.append((name, data, ext))
        items.extend((n, d, ext) for n, d in _derived(name, data, rng, cuts, flips))
    items.extend((n, d, ".wav") for n, d in _lying_wavs(rng))
    items.extend((n, d, ".flac") for n, d in _flac_streaminfo_lies(seeds["flac"][0]))
    items.extend((n, d, ".wav") for n, d in _float_wavs())
    items.extend((n, d, ".wav") for n, d in _extreme_wavs())
    items.extend((n, d, ".wav") for n, d in _not_audio(rng))
    return [Item(f"audio-{n}", d, f"{n}{ext}") for n, d, ext in items]


# ------------------------------------------------------------------------------------------------ MIDI


def _midi_bytes(midi: mido.MidiFile) -> bytes:
    buf = io.BytesIO()
    midi.save(file=buf)
    return buf.getvalue()


def midi_seed() -> bytes:
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)])
    for pitch in (60, 62, 64, 65, 67):
        track.append(mido.Message("note_on", note=pitch, velocity=90, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=240))
    midi.tracks.append(track)
    return _midi_bytes(midi)


def _lying_midis() -> Iterator[tuple[str, bytes]]:
    def smf(fmt: int, ntracks: int, division: int, tracks: bytes, header_len: int = 6) -> bytes:
        return b"MThd" + struct.pack(">IHHH", header_len, fmt, ntracks, division) + tracks

    def trk(body: bytes, length: int | None = None) -> bytes:
        return b"MTrk" + struct.pack(">I", len(body) if length is None else length) + body

    end = b"\x00\xff\x2f\x00"
    note = b"\x00\x90\x3c\x40\x60\x80\x3c\x00"
    yield "midi-header-only", smf(0, 1, 480, b"")
    yield "midi-zero-tracks", smf(1, 0, 480, b"")
    yield "midi-65535-tracks", smf(1, 65535, 480, trk(note + end))
    yield "midi-format-2", smf(2, 1, 480, trk(note + end))
    yield "midi-format-7", smf(7, 1, 480, trk(note + end))
    yield "midi-division-0", smf(0, 1, 0, trk(note + end))
    yield "midi-smpte-division", smf(0, 1, 0xE728, trk(note + end))
    yield "midi-header-len-0", smf(0, 1, 480, trk(note + end), header_len=0)
    yield "midi-header-len-huge", smf(0, 1, 480, trk(note + end), header_len=2**31)
    yield "midi-track-len-huge", smf(0, 1, 480, trk(note + end, length=2**32 - 1))
    yield "midi-track-len-short", smf(0, 1, 480, trk(note + end, length=3))
    yield "midi-no-end-of-track", smf(0, 1, 480, trk(note))
    yield "midi-running-status-first", smf(0, 1, 480, trk(b"\x00\x3c\x40" + end))
    yield "midi-varlen-overlong", smf(0, 1, 480, trk(b"\xff\xff\xff\xff\xff\x90\x3c\x40" + end))
    yield "midi-tempo-zero", smf(0, 1, 480, trk(b"\x00\xff\x51\x03\x00\x00\x00" + note + end))
    yield "midi-meta-len-huge", smf(0, 1, 480, trk(b"\x00\xff\x01\x8f\xff\xff\x7f" + end))
    yield "midi-sysex-unterminated", smf(0, 1, 480, trk(b"\x00\xf0\x05\x7e\x7f"))
    yield "midi-data-byte-over-127", smf(0, 1, 480, trk(b"\x00\x90\xbc\xc0" + end))
    yield "midi-not-mtrk", smf(0, 1, 480, b"XXXX\x00\x00\x00\x04" + end)
    # Small on disk, huge as music (bounded by cadenza.music.midi_input): a note at tick 2^28 with division 1,
    # far-apart notes, 100,000 notes, a seed longer than any melody, a seed ending inside a bar.
    far = b"\x00\x99\x24\x64\x01\x89\x24\x00" + midi_hostile.vlq(2**28 - 1) + b"\x99\x24\x64\x01\x89\x24\x00" + end
    yield "midi-far-note", smf(0, 1, 1, trk(far))
    yield "midi-sparse-10000-notes", smf(0, 1, 1, trk(midi_hostile.notes(10_000, 500)))
    yield "midi-100000-notes", smf(0, 1, 480, trk(midi_hostile.notes(100_000, 2)))
    yield "midi-long-seed", smf(0, 1, 480, trk(midi_hostile.notes(1_000, 8 * 480, channel=0, pitch=62, length=480)))
    yield "midi-ragged-seed", smf(0, 1, 480, trk(midi_hostile.notes(17, 240, channel=0, pitch=64, length=200)))
    yield "midi-rmid-riff", b"RIFF\x00\x00\x00\x00RMIDdata" + midi_seed()
    yield "midi-empty", b""
    yield "midi-text", b"MThd is not enough\n"
    yield "midi-wav", _sf_bytes(_tone(0.1, 8000, 1), 8000, "WAV", "PCM_16")


def midi_corpus(seed: int = 0, cuts: int = 24, flips: int = 12) -> list[Item]:
    """Corrupt and hostile MIDI files (about 75 with the defaults), names prefixed ``midi-``."""
    rng = random.Random(seed + 1)
    data = midi_seed()
    items = [("seed", data), *_derived("seed", data, rng, cuts, flips), *_lying_midis()]
    return [Item(f"midi-{n}" if not n.startswith("midi-") else n, d, f"{n}.mid") for n, d in items]


HOSTILE_FILENAMES = (
    "../../../../etc/passwd.wav",
    "..\\..\\windows\\win.ini.wav",
    "/absolute/path.wav",
    "曲.wav",
    "песня.mp3",
    "😀.wav",
    "a" * 1000 + ".wav",
    'name with spaces & quotes ".wav',
    ".hidden.wav",
    "no-extension",
    "CON.wav",
    "semi;colon=.wav",
)
