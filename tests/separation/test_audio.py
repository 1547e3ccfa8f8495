"""cadenza.music.audio: decoding by content, writers, levels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from cadenza.music import audio

FORMATS = [
    ("WAV", "PCM_16", "wav", 44100),
    ("FLAC", "PCM_24", "flac", 44100),
    ("OGG", "VORBIS", "ogg", 44100),
    ("OGG", "OPUS", "opus", 48000),
    ("MP3", "MPEG_LAYER_III", "mp3", 44100),
    ("AIFF", "PCM_16", "aiff", 44100),
]


@pytest.mark.parametrize(("fmt", "subtype", "name", "rate"), FORMATS)
def test_each_format_is_recognised_from_content_not_extension(write_song, tmp_path, fmt, subtype, name, rate):
    # The extension lies (".wav" for everything, ".bin" too): detection must use the content.
    path = write_song(f"song-{name}.dat", seconds=2.0, sample_rate=rate, format=fmt, subtype=subtype)
    lying = path.rename(tmp_path / f"{name}-really.wav" if name != "wav" else tmp_path / "wav-really.mp3")
    info = audio.probe(lying)
    assert info.format == name
    assert info.sample_rate == rate and info.channels == 2
    assert info.duration_s == pytest.approx(2.0, abs=0.06)
    x = audio.read_audio(lying, 0, 4096)
    assert x.shape == (2, 4096) and x.dtype == np.float32
    assert 0.05 < np.max(np.abs(audio.read_audio(lying))) < 1.0


def _write_m4a(av, x, path) -> None:
    """``x`` ``(2, samples)`` float32 at 44.1 kHz as AAC in an MP4 container at ``path``."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout="stereo")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def test_m4a_aac_is_decoded_through_pyav(mix_factory, tmp_path):
    av = pytest.importorskip("av")
    x = mix_factory(2.0)
    path = tmp_path / "song.bin"
    _write_m4a(av, x, path)
    info = audio.probe(path)
    assert (info.format, info.codec, info.decoder) == ("m4a", "aac", "av")
    wav = audio.decode_to_wav(path, tmp_path / "decoded.wav")
    assert wav.format == "wav" and wav.channels == 2
    assert wav.duration_s == pytest.approx(2.0, abs=0.1)  # AAC adds encoder priming/padding
    peak_db, _, frames = audio.av_level_stats(path)
    assert frames == pytest.approx(2 * 44100, rel=0.05)
    assert -6.0 < peak_db < 0.5
    # The engine path: probe_upload accepts it, run transcodes it and separates it.
    from cadenza.engines.base import RunContext
    from cadenza.engines.separation import ENGINE, SeparationRequest
    from cadenza.settings import Settings

    assert ENGINE.input("file").run_probe(path, Settings(models_dir=tmp_path))["format"] == "m4a"
    ctx = RunContext(workdir=tmp_path / "job", models_dir=tmp_path, cache={}, input_path=path)
    result = ENGINE.resolve("run")(SeparationRequest(model="hpss"), lambda p, s="": None, ctx)
    assert [o.metadata["sample_rate"] for o in result.outputs] == [44100, 44100]
    assert sorted(p.name for p in ctx.workdir.iterdir()) == ["drums.wav", "harmonic.wav"]


@pytest.mark.parametrize(
    ("output_format", "pcm_type", "subtype"),
    [("wav", "PCM_16", "PCM_16"), ("wav", "PCM_24", "PCM_24"), ("wav", "FLOAT", "FLOAT"), ("flac", "PCM_24", "PCM_24")],
)
def test_pcm_writers(tmp_path, mix_factory, output_format, pcm_type, subtype):
    x = mix_factory(1.0, 32000)
    path = tmp_path / f"out.{output_format}"
    with audio.open_writer(path, 32000, 2, output_format, pcm_type) as out:
        out.write(x.T)
    info = sf.info(str(path))
    assert (info.subtype, info.samplerate, info.frames) == (subtype, 32000, 32000)
    tolerance = 1e-6 if pcm_type == "FLOAT" else 2.0 ** (1 - audio.PCM_BITS[pcm_type])
    assert np.max(np.abs(audio.read_audio(path) - x)) <= tolerance


def test_mp3_writer_honours_bitrate(tmp_path, mix_factory):
    x = mix_factory(4.0)
    sizes = {}
    for kbps in (96, 320):
        path = tmp_path / f"{kbps}.mp3"
        with audio.open_writer(path, 44100, 2, "mp3", mp3_bitrate_kbps=kbps) as out:
            out.write(x.T)
        sizes[kbps] = path.stat().st_size * 8 / 4.0 / 1000  # kbps over 4 s
        assert audio.probe(path).format == "mp3"
    assert sizes[96] == pytest.approx(96, rel=0.1)
    assert sizes[320] == pytest.approx(320, rel=0.1)
    with pytest.raises(ValueError, match="sample rates"):
        audio.open_writer(tmp_path / "x.mp3", 96000, 2, "mp3")


def test_levels_and_silence(tmp_path):
    assert audio.peak_dbfs(1.0) == 0.0
    assert audio.peak_dbfs(0.5) == pytest.approx(-6.0206, abs=1e-3)
    assert audio.peak_dbfs(0.0) == -math.inf
    quiet = tmp_path / "quiet.wav"
    sf.write(str(quiet), np.full((8000, 1), 10 ** (-65 / 20), dtype=np.float32), 8000, subtype="FLOAT")
    peak, rms, _ = audio.level_stats(quiet)
    assert peak == pytest.approx(-65, abs=0.01) and rms == pytest.approx(-65, abs=0.01)
    assert audio.is_silent(peak, rms)
    assert not audio.is_silent(-20.0, -30.0)
    assert audio.is_silent(-50.0, -75.0)  # RMS below -70 dBFS


def test_sniff_names_the_content(tmp_path):
    cases = {b"\x89PNG\r\n\x1a\n0000": "PNG image", b"MThd\x00\x00\x00\x06": "MIDI", b"hello": "text", b"": "empty"}
    for data, expected in cases.items():
        path = tmp_path / "x.bin"
        path.write_bytes(data)
        assert expected in audio.sniff(path)


def test_what_progress_raises_while_decoding_is_not_a_decoder_error(mix_factory, tmp_path):
    """Regression: a cancel (raised by the job's progress callback) during an M4A decode became
    AudioDecodeError, so the job was recorded as failed instead of cancelled."""
    av = pytest.importorskip("av")
    x = mix_factory(2.0)
    path = tmp_path / "song.m4a"
    _write_m4a(av, x, path)

    class Cancelled(Exception):
        pass

    def progress(percent: float) -> None:
        raise Cancelled

    dest = tmp_path / "decoded.wav"
    with pytest.raises(Cancelled):
        audio.decode_to_wav(path, dest, progress=progress, expected_frames=audio.probe(path).frames)
    assert not dest.exists()
