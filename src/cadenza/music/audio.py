"""Audio decode/encode primitives: probe by content, block reading, writers, levels.

Arrays are always ``(channels, samples)`` float32 in [-1, 1] full scale (0 dBFS = 1.0).

Decoding: libsndfile (via ``soundfile``) reads WAV, FLAC, Ogg (Vorbis and Opus), MP3 and AIFF;
it detects the container from the file's header, not its name. M4A/AAC (MP4 family and raw ADTS)
is decoded with PyAV (``av``, wheels bundle FFmpeg; the optional ``formats`` extra) when installed.
PyAV-only inputs are transcoded once to a float WAV (:func:`decode_to_wav`) so that every later
step reads blocks with libsndfile in bounded memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from cadenza.music import formats

# libsndfile major formats accepted, and the name we report for each.
_SNDFILE_FORMATS = {
    "WAV": "wav",
    "WAVEX": "wav",
    "RF64": "wav",
    "FLAC": "flac",
    "OGG": "ogg",
    "MP3": "mp3",
    "AIFF": "aiff",
}
# PyAV (FFmpeg demuxer) names accepted, and the name we report.
_AV_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2": "m4a", "aac": "aac", "ogg": "ogg", "mp3": "mp3"}

SUPPORTED_INPUT_FORMATS: tuple[str, ...] = ("wav", "flac", "ogg", "opus", "mp3", "aiff", "m4a", "aac")

# Output format (also the file extension) -> (libsndfile major format, media type)
OUTPUT_FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "audio/wav"),
    "flac": ("FLAC", "audio/flac"),
    "mp3": ("MP3", "audio/mpeg"),
}
PCM_BITS: dict[str, int | str] = {"PCM_16": 16, "PCM_24": 24, "FLOAT": "float"}

# Silence thresholds (our choice, documented): a file is silent when its sample peak is below
# -60 dBFS or its RMS is below -70 dBFS.
SILENCE_PEAK_DBFS = -60.0
SILENCE_RMS_DBFS = -70.0

# MP3 encoding via libsndfile/LAME: sample rates MPEG-1/2 Layer III allows.
MP3_SAMPLE_RATES = formats.MP3_SAMPLE_RATES


#: What :func:`sniff` names that is certainly not audio (no decoder is tried on it).
NOT_AUDIO = frozenset({"text", "PNG image", "JPEG image", "PDF document", "ZIP archive", "gzip archive"})


class AudioDecodeError(ValueError):
    """The file is not audio we can decode. ``found`` names what the content looks like;
    ``unsupported`` is True when it is a recognised format that we do not accept."""

    def __init__(self, message: str, found: str, unsupported: bool = False) -> None:
        super().__init__(message)
        self.found, self.unsupported = found, unsupported


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe` learned from a file's content.

    ``format``: one of :data:`SUPPORTED_INPUT_FORMATS`; ``codec``: libsndfile subtype (``PCM_16``,
    ``VORBIS``, ``MPEG_LAYER_III``) or the FFmpeg codec name; ``frames``: samples per channel
    (exact for libsndfile, estimated from the container for PyAV); ``decoder``: ``"sndfile"`` or ``"av"``.
    """

    format: str
    codec: str
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    decoder: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sniff(path: Path) -> str:
    """Name what a file's first bytes look like (magic numbers), e.g. ``"WAV (RIFF)"``, ``"PNG image"``,
    ``"text"``, ``"empty"``; ``"unknown binary"`` otherwise. Used for error messages only."""
    with Path(path).open("rb") as f:
        head = f.read(64)
    if not head:
        return "empty"
    magic = [
        (b"RIFF", 0, "WAV (RIFF)"),
        (b"RF64", 0, "WAV (RF64)"),
        (b"fLaC", 0, "FLAC"),
        (b"OggS", 0, "Ogg"),
        (b"ID3", 0, "MP3 (ID3 tag)"),
        (b"FORM", 0, "AIFF/IFF"),
        (b"ftyp", 4, "MP4/M4A"),
        (b"MThd", 0, "MIDI (Standard MIDI File: notes, not audio)"),
        (b".snd", 0, "Sun AU"),
        (b"caff", 0, "Core Audio Format (CAF)"),
        (b"\x1aE\xdf\xa3", 0, "Matroska/WebM"),
        (b"0&\xb2u", 0, "ASF/WMA"),
        (b"\x89PNG", 0, "PNG image"),
        (b"\xff\xd8\xff", 0, "JPEG image"),
        (b"%PDF", 0, "PDF document"),
        (b"PK\x03\x04", 0, "ZIP archive"),
        (b"\x1f\x8b", 0, "gzip archive"),
    ]
    for sig, offset, name in magic:
        if head[offset : offset + len(sig)] == sig:
            return name
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF0 == 0xF0:
        return "MPEG/ADTS audio frame"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unknown binary"


def _reason(exc: BaseException) -> str:
    """An error's reason without file paths (FFmpeg errors carry the staging path)."""
    return getattr(exc, "strerror", None) or type(exc).__name__


def _probe_av(path: Path, found: str) -> AudioInfo:
    try:
        import av
    except ImportError as exc:
        raise AudioDecodeError(
            f"libsndfile cannot read this file (content looks like {found}); M4A/AAC need the optional "
            "'formats' extra (PyAV)",
            found,
            unsupported=True,
        ) from exc
    try:
        container = av.open(str(path))
    except Exception as exc:  # FFmpeg raises many error types; all mean "cannot open"
        raise AudioDecodeError(f"not decodable audio (content looks like {found}): {_reason(exc)}", found) from exc
    try:
        with container:
            return _read_av_header(container, found)
    except AudioDecodeError:
        raise
    except Exception as exc:  # a broken container can fail anywhere while reading its header
        raise AudioDecodeError(f"corrupt audio (content looks like {found}): {_reason(exc)}", found) from exc


def _read_av_header(container: Any, found: str) -> AudioInfo:
    fmt = container.format.name
    streams = container.streams.audio
    if not streams:
        raise AudioDecodeError(f"no audio stream (content looks like {found}, container {fmt!r})", found)
    if fmt not in _AV_FORMATS:
        raise AudioDecodeError(f"unsupported format {fmt!r} (content looks like {found})", fmt, unsupported=True)
    stream = streams[0]
    if stream.codec_context is None:
        raise AudioDecodeError(f"corrupt {_AV_FORMATS[fmt]} audio: no decodable codec", _AV_FORMATS[fmt])
    rate = int(stream.codec_context.sample_rate or stream.rate or 0)
    channels = int(stream.codec_context.channels)
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / 1_000_000
    else:
        duration_s = 0.0
    # Decode one frame to prove the stream is readable.
    try:
        next(container.decode(stream))
    except StopIteration:
        duration_s = 0.0
    except Exception as exc:
        raise AudioDecodeError(f"corrupt {_AV_FORMATS[fmt]} audio: {_reason(exc)}", _AV_FORMATS[fmt]) from exc
    if rate <= 0 or channels <= 0:
        raise AudioDecodeError(f"corrupt {_AV_FORMATS[fmt]} audio: no sample rate or channels", _AV_FORMATS[fmt])
    name = _AV_FORMATS[fmt]
    if name == "ogg" and stream.codec_context.name == "opus":
        name = "opus"
    return AudioInfo(
        format=name,
        codec=stream.codec_context.name,
        sample_rate=rate,
        channels=channels,
        frames=round(duration_s * rate),
        duration_s=duration_s,
        decoder="av",
    )


def probe(path: Path, check: Callable[[AudioInfo], None] | None = None) -> AudioInfo:
    """Identify a file by its content and read its header.

    ``check`` is called with the header's :class:`AudioInfo` before anything is decoded (apart from
    one AAC frame for PyAV formats) and may raise to refuse the file, e.g. for its cost. The last
    frames are then read to catch files truncated below what their header promises.
    Raises :class:`AudioDecodeError` when the content is not decodable audio (``found`` says what it
    looks like) or is a recognised but unsupported format (``unsupported=True``).
    """
    path = Path(path)
    found = sniff(path)
    if found == "empty":
        raise AudioDecodeError("the file is empty", found)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        info = None
    if info is None:
        if found in ("MIDI (Standard MIDI File: notes, not audio)", "Sun AU", "Core Audio Format (CAF)", "ASF/WMA"):
            raise AudioDecodeError(f"unsupported format: {found}", found, unsupported=True)
        if found in ("WAV (RIFF)", "WAV (RF64)", "FLAC", "AIFF/IFF", "MP3 (ID3 tag)"):
            raise AudioDecodeError(f"corrupt or truncated {found} file: libsndfile cannot parse it", found)
        if found in NOT_AUDIO:
            raise AudioDecodeError(f"not audio: the content looks like {found}", found)
        result = _probe_av(path, found)
        if check is not None:
            check(result)
        return result
    if info.format not in _SNDFILE_FORMATS:
        raise AudioDecodeError(
            f"unsupported format {info.format_info} (content looks like {found})", info.format, unsupported=True
        )
    name = _SNDFILE_FORMATS[info.format]
    if name == "ogg" and info.subtype == "OPUS":
        name = "opus"
    if info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
        raise AudioDecodeError(f"{name} file has no audio frames", name)
    result = AudioInfo(
        format=name,
        codec=info.subtype,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        duration_s=info.frames / info.samplerate,
        decoder="sndfile",
    )
    if check is not None:
        check(result)
    # Read the last frames: catches truncated files whose header promises more than is there.
    try:
        with sf.SoundFile(str(path)) as f:
            f.seek(max(0, f.frames - 1024))
            tail = f.read(1024, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioDecodeError(
            f"corrupt {name} file: {getattr(exc, 'error_string', None) or _reason(exc)}", name
        ) from exc
    if tail.shape[0] == 0:
        raise AudioDecodeError(f"corrupt {name} file: no data where the header promises audio", name)
    return result


def decode_to_wav(
    path: Path, dest: Path, progress: Callable[[float], None] | None = None, expected_frames: int = 0
) -> AudioInfo:
    """Transcode a PyAV-decodable file (M4A/AAC) to a float32 WAV at ``dest``, streaming in bounded
    memory; ``progress(percent)`` (0–100 of ``expected_frames``, e.g. :func:`probe`'s estimate) after
    each frame. Returns the exact :class:`AudioInfo` of ``dest``. Raises AudioDecodeError on decode
    errors; what ``progress`` raises (a cancel) passes through unchanged."""
    import av

    reporting = False
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            rate, channels = int(stream.codec_context.sample_rate), int(stream.codec_context.channels)
            resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
            decoded = 0
            with float_wav_writer(dest, rate, channels) as out:
                for frame in container.decode(stream):
                    for rf in resampler.resample(frame):
                        out.write(rf.to_ndarray().T)
                    decoded += frame.samples
                    if progress is not None and expected_frames > 0:
                        reporting = True  # what progress raises (a cancel) is not a decoder error
                        progress(min(100.0, 100.0 * decoded / expected_frames))
                        reporting = False
                for rf in resampler.resample(None):
                    out.write(rf.to_ndarray().T)
    except Exception as exc:
        Path(dest).unlink(missing_ok=True)
        if reporting:
            raise
        raise AudioDecodeError(f"cannot decode the audio: {_reason(exc)}", "m4a") from exc
    except BaseException:
        Path(dest).unlink(missing_ok=True)
        raise
    return probe(dest)


def read_audio(path: Path, start_frame: int = 0, frames: int = -1) -> np.ndarray:
    """Read ``frames`` samples per channel from ``start_frame`` (``-1``: to the end).

    Returns ``(channels, samples)`` float32. libsndfile formats only (see :func:`decode_to_wav`).
    """
    data, _ = sf.read(str(path), frames=frames, start=start_frame, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)


def iter_blocks(path: Path, block_frames: int) -> Iterator[np.ndarray]:
    """Yield consecutive ``(channels, <=block_frames)`` float32 blocks of a libsndfile-readable file."""
    for block in sf.blocks(str(path), blocksize=block_frames, dtype="float32", always_2d=True):
        yield np.ascontiguousarray(block.T)


def peak_dbfs(peak: float) -> float:
    """Sample peak (linear, 1.0 = full scale) in dBFS; ``-inf`` for digital silence."""
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def _nonfinite_error(count: int) -> AudioDecodeError:
    return AudioDecodeError(
        f"the audio holds {count} non-finite samples (NaN or ±Inf); samples must be finite numbers", "non-finite"
    )


def level_stats(path: Path, block_frames: int = 1 << 16, max_frames: int | None = None) -> tuple[float, float, int]:
    """Scan a file in blocks: returns (sample peak dBFS, RMS dBFS, frames read) over all channels.

    Memory is bounded by ``block_frames`` × channels; reading stops once more than ``max_frames`` were
    read (an MP3 without a Xing header has only an estimated length). Raises :class:`AudioDecodeError`
    when libsndfile fails mid-file or a sample is NaN or ±Inf (float WAV/AIFF can hold them)."""
    peak, sq, n, frames = 0.0, 0.0, 0, 0
    try:
        for block in iter_blocks(path, block_frames):
            frames += block.shape[-1]
            if max_frames is not None and frames > max_frames:
                break
            if block.size:
                bad = int(np.count_nonzero(~np.isfinite(block)))
                if bad:
                    raise _nonfinite_error(bad)
                peak = max(peak, float(np.max(np.abs(block))))
                sq += float(np.sum(block.astype(np.float64) ** 2))
                n += block.size
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioDecodeError(
            f"corrupt audio: {getattr(exc, 'error_string', None) or _reason(exc)}", "corrupt"
        ) from exc
    rms = math.sqrt(sq / n) if n else 0.0
    return peak_dbfs(peak), peak_dbfs(rms), frames


def av_level_stats(path: Path, max_frames: int | None = None) -> tuple[float, float, int]:
    """:func:`level_stats` for PyAV-decoded formats (M4A/AAC), decoding frame by frame.

    Returns ``(peak dBFS, RMS dBFS, frames decoded)``. Decoding stops once more than ``max_frames``
    samples per channel were decoded (ADTS streams carry no duration, so this bounds the cost of a
    small file that decodes to hours); the caller compares the returned count with its limit.
    Raises :class:`AudioDecodeError` on any decoder error or a non-finite sample."""
    import av

    peak, sq, n, frames = 0.0, 0.0, 0, 0
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(container.streams.audio[0]):
                samples = frame.to_ndarray()
                block = samples.astype(np.float64)
                if np.issubdtype(samples.dtype, np.integer):
                    block /= float(np.iinfo(samples.dtype).max)
                if block.size:
                    bad = int(np.count_nonzero(~np.isfinite(block)))
                    if bad:
                        raise _nonfinite_error(bad)
                    peak = max(peak, float(np.max(np.abs(block))))
                    sq += float(np.sum(block**2))
                    n += block.size
                frames += int(frame.samples)
                if max_frames is not None and frames > max_frames:
                    break
    except AudioDecodeError:
        raise
    except Exception as exc:  # FFmpeg raises many error types
        raise AudioDecodeError(f"corrupt audio: {_reason(exc)}", "m4a") from exc
    return peak_dbfs(peak), peak_dbfs(math.sqrt(sq / n) if n else 0.0), frames


def is_silent(peak_db: float, rms_db: float) -> bool:
    """True when peak < :data:`SILENCE_PEAK_DBFS` (-60 dBFS) or RMS < :data:`SILENCE_RMS_DBFS` (-70 dBFS)."""
    return peak_db < SILENCE_PEAK_DBFS or rms_db < SILENCE_RMS_DBFS


def mp3_compression_level(bitrate_kbps: int, sample_rate: int) -> float:
    """libsndfile's compression level (0..1) for a constant MP3 bitrate.

    libsndfile 1.2 (``src/mpeg_l3_encode.c``) maps level c to ``320 - c*(320-32)`` kbps at
    >= 32 kHz (MPEG-1), ``160 - c*152`` at 16-24 kHz (MPEG-2) and ``64 - c*56`` below (MPEG-2.5).
    """
    top, bottom = (320, 32) if sample_rate >= 32000 else (160, 8) if sample_rate >= 16000 else (64, 8)
    kbps = min(max(bitrate_kbps, bottom), top)
    return (top - kbps) / (top - bottom)


def open_writer(
    path: Path,
    sample_rate: int,
    channels: int,
    output_format: str = "wav",
    pcm_type: str = "PCM_16",
    mp3_bitrate_kbps: int = 320,
) -> sf.SoundFile:
    """Open a ``soundfile.SoundFile`` for writing ``output_format`` (``wav``, ``flac``, ``mp3``).

    ``pcm_type`` (``PCM_16``, ``PCM_24``, ``FLOAT``) applies to wav/flac (FLAC has no float: raises
    ValueError). MP3 is constant bitrate ``mp3_bitrate_kbps`` (LAME through libsndfile) and needs a
    sample rate in :data:`MP3_SAMPLE_RATES`. Write ``(samples, channels)`` arrays (soundfile's layout).
    """
    fmt = OUTPUT_FORMATS[output_format][0]
    if output_format == "mp3":
        if sample_rate not in MP3_SAMPLE_RATES:
            raise ValueError(f"MP3 needs one of the sample rates {MP3_SAMPLE_RATES} Hz, not {sample_rate}")
        return sf.SoundFile(
            str(path),
            "w",
            sample_rate,
            channels,
            subtype="MPEG_LAYER_III",
            format=fmt,
            compression_level=mp3_compression_level(mp3_bitrate_kbps, sample_rate),
            bitrate_mode="CONSTANT",
        )
    if output_format == "flac" and pcm_type == "FLOAT":
        raise ValueError("FLAC stores integer PCM only: use PCM_16 or PCM_24")
    return float_wav_writer(path, sample_rate, channels, subtype=pcm_type, file_format=fmt)


# sndfile.h: SFC_SET_ADD_PEAK_CHUNK (not exported by soundfile's cffi module).
_SFC_SET_ADD_PEAK_CHUNK = 0x1050


def float_wav_writer(
    path: Path, sample_rate: int, channels: int, subtype: str = "FLOAT", file_format: str = "WAV"
) -> sf.SoundFile:
    """Open a writer without libsndfile's ``PEAK`` chunk, which carries a timestamp: the same samples
    then give the same bytes (determinism). Used for all WAV/FLAC outputs and temporaries."""
    f = sf.SoundFile(str(path), "w", sample_rate, channels, subtype=subtype, format=file_format)
    sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, sf._snd.SF_FALSE)
    return f


def bit_depth(output_format: str, pcm_type: str) -> int | str:
    """Bit depth reported for an output: 16 or 24, ``"float"`` (32-bit float WAV) or ``"mp3"``."""
    return "mp3" if output_format == "mp3" else PCM_BITS[pcm_type]
