"""probe_upload and validate_request: every rejection is clear and leaves nothing behind."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from cadenza.engines.base import EngineInputError, UploadRejected
from cadenza.engines.separation import ENGINE, SeparationRequest
from cadenza.settings import Settings


@pytest.fixture
def settings(tmp_path):
    return Settings(
        models_dir=tmp_path / "models", engines={"separation": {"max_duration_s": 5.0}}, files_dir=tmp_path / "files"
    )


def _rejected(path, settings) -> UploadRejected:
    before = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(UploadRejected) as info:
        ENGINE.input("file").run_probe(path, settings)
    assert sorted(p.name for p in path.parent.iterdir()) == before  # nothing left behind
    return info.value


def test_accepts_a_good_upload_and_reports_its_info(write_song, settings):
    info = ENGINE.input("file").run_probe(write_song("song.flac", seconds=2.0), settings)
    assert info["format"] == "flac" and info["channels"] == 2 and info["sample_rate"] == 44100
    assert info["duration_s"] == pytest.approx(2.0)
    assert -6.0 < info["peak_dbfs"] < 0.0


def test_not_audio_is_422_naming_what_was_found(tmp_path, settings):
    path = tmp_path / "song.mp3"
    path.write_text("this is a text file, not a song\n")
    err = _rejected(path, settings)
    assert err.status == 422 and "text" in err.detail and "wav" in err.detail
    # Regression: the text named FFmpeg's internals and M4A needs; now it says what it is, with a full stop.
    assert err.detail.startswith("Not audio: the content looks like text.") and err.detail.endswith(".")
    png = tmp_path / "cover.wav"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    err = _rejected(png, settings)
    assert err.status == 422 and "PNG image" in err.detail


def test_corrupt_and_truncated_files_are_422(write_song, tmp_path, settings):
    flac = write_song("song.flac", seconds=2.0)
    data = flac.read_bytes()
    flac.write_bytes(data[: int(len(data) * 0.6)])  # header promises more frames than there are
    err = _rejected(flac, settings)
    assert err.status == 422 and "flac" in err.detail.lower()
    wav = write_song("song.wav", seconds=2.0)
    wav.write_bytes(wav.read_bytes()[:30])  # cut inside the header
    err = _rejected(wav, settings)
    assert err.status == 422 and "WAV" in err.detail


@pytest.mark.parametrize(("fmt", "found"), [("AU", "AU"), ("CAF", "CAF")])
def test_unsupported_container_is_415_listing_supported(write_song, settings, fmt, found):
    path = write_song("song.wav", seconds=1.0, format=fmt, subtype="PCM_16")
    err = _rejected(path, settings)
    assert err.status == 415 and found in err.detail
    for name in ("wav", "flac", "ogg", "mp3", "aiff", "m4a"):
        assert name in err.detail


def test_midi_is_415(tmp_path, settings):
    path = tmp_path / "song.wav"
    path.write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x00")
    err = _rejected(path, settings)
    assert err.status == 415 and "MIDI" in err.detail


def test_too_long_is_422(write_song, settings):
    err = _rejected(write_song("long.wav", seconds=6.0, sample_rate=8000), settings)
    assert err.status == 422 and "maximum is 5 s" in err.detail


def test_silent_and_empty_are_422(tmp_path, settings):
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros((8000, 2), dtype=np.float32), 8000)
    err = _rejected(silent, settings)
    assert err.status == 422 and err.title == "Silent audio" and "-60" in err.detail
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    err = _rejected(empty, settings)
    assert err.status == 422 and err.title == "Empty file"
    no_frames = tmp_path / "noframes.wav"
    sf.write(str(no_frames), np.zeros((0, 2), dtype=np.float32), 8000)
    assert _rejected(no_frames, settings).status == 422


def test_unknown_model_lists_the_valid_ones(settings):
    with pytest.raises(EngineInputError, match="unknown model 'nope'; available: hpss"):
        ENGINE.resolve("validate_request")(SeparationRequest(model="nope"), settings)


def test_missing_weights_say_which_files_to_add(settings):
    with pytest.raises(EngineInputError, match=r"htdemucs.*missing.*demucs/htdemucs\.yaml.*955717e8-8726e21a\.th"):
        ENGINE.resolve("validate_request")(SeparationRequest(model="htdemucs"), settings)


def test_unknown_stem_lists_the_valid_ones(settings):
    with pytest.raises(EngineInputError, match="unknown stem.*vocals.*valid: drums, harmonic"):
        ENGINE.resolve("validate_request")(SeparationRequest(model="hpss", stems=["drums", "vocals"]), settings)
    with pytest.raises(EngineInputError, match="valid: drums, harmonic, residual"):
        ENGINE.resolve("validate_request")(SeparationRequest(model="hpss", two_stems="bass", margin=2.0), settings)
    assert ENGINE.resolve("validate_request")(SeparationRequest(model="hpss", stems="drums,harmonic"), settings) == []


def test_demucs_only_options_warn_with_hpss(settings):
    assert ENGINE.resolve("validate_request")(SeparationRequest(model="hpss", shifts=1, overlap=0.25), settings) == []
    (warning,) = ENGINE.resolve("validate_request")(SeparationRequest(model="hpss", shifts=2), settings)
    assert warning == "shifts apply to Demucs models only; hpss ignores them"


def test_request_model_rejects_bad_combinations():
    with pytest.raises(ValueError, match="either 'stems' or 'two_stems'"):
        SeparationRequest(stems=["drums"], two_stems="drums")
    with pytest.raises(ValueError, match="FLAC stores integer PCM"):
        SeparationRequest(output_format="flac", pcm_type="FLOAT")
    with pytest.raises(ValueError, match="MP3 allows"):
        SeparationRequest(output_format="mp3", sample_rate=96000)
    with pytest.raises(ValueError):
        SeparationRequest(overlap=1.0)
    with pytest.raises(ValueError):
        SeparationRequest(device="tpu")


def test_mp3_of_a_96k_input_needs_a_sample_rate(tmp_path, write_song):
    from cadenza.engines.base import RunContext

    song = write_song("hi.wav", seconds=1.0, sample_rate=96000)
    ctx = RunContext(workdir=tmp_path / "job", models_dir=tmp_path, cache={}, input_path=song)
    with pytest.raises(EngineInputError, match="MP3 needs a sample rate"):
        ENGINE.resolve("run")(SeparationRequest(model="hpss", output_format="mp3"), lambda p, s="": None, ctx)
    assert not ctx.workdir.exists() or list(ctx.workdir.iterdir()) == []


def test_cuda_without_gpu_is_a_clear_error(settings):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(EngineInputError, match="no CUDA GPU"):
        ENGINE.resolve("validate_request")(SeparationRequest(model="hpss", device="cuda"), settings)


def _adts(seconds: float) -> bytes:
    av = pytest.importorskip("av")
    import io

    rate = 44100
    t = np.arange(int(seconds * rate)) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format="adts") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(x, format="fltp", layout="stereo")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buf.getvalue()


def test_truncated_adts_aac_is_422_or_accepted_never_a_crash(tmp_path, settings):
    """Regression: a 2 s ADTS AAC cut mid-stream passed the header probe and the level scan raised
    AudioDecodeError outside the guarded call (a 500)."""
    data = _adts(2.0)
    path = tmp_path / "song.aac"
    outcomes = set()
    for cut in sorted({*range(1, len(data), max(1, len(data) // 60)), 16392, len(data) - 1}):
        path.write_bytes(data[:cut])
        try:
            ENGINE.input("file").run_probe(path, settings)
            outcomes.add("accepted")
        except UploadRejected as exc:
            assert exc.status == 422, (cut, exc.detail)
            outcomes.add(exc.title)
    assert "accepted" in outcomes and "Not decodable audio" in outcomes


def _wav_header(channels: int, rate: int, bits: int = 16, data_bytes: int = 4096) -> bytes:
    import struct

    align = channels * bits // 8
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


@pytest.mark.parametrize(
    ("channels", "rate", "title", "mention"),
    [
        (1024, 44100, "Too many channels", "1024 channels; the maximum is 8"),
        (9, 44100, "Too many channels", "9 channels; the maximum is 8"),
        (2, 2**31 - 1, "Sample rate too high", "2147483647 Hz; the maximum is 192000 Hz"),
        (2, 2**31, "Not decodable audio", "WAV"),  # libsndfile reads the rate as a signed int
        (2, 768_000, "Sample rate too high", "768000 Hz"),
        (2, 100, "Sample rate too low", "the minimum is 8000 Hz"),
    ],
)
def test_costly_shapes_are_refused_from_the_header(tmp_path, settings, channels, rate, title, mention):
    path = tmp_path / "lying.wav"
    path.write_bytes(_wav_header(channels, rate) + bytes(range(256)) * 16)
    err = _rejected(path, settings)
    assert (err.status, err.title) == (422, title) and mention in err.detail


def test_decoded_size_is_checked_before_decoding(write_song, settings):
    """Regression: a 1.4 MB FLAC of 8 channels at 192 kHz for 899 s was accepted and cost gigabytes.
    Here the STREAMINFO claims that shape over 0.5 s of real data: the header check refuses it before
    any decoding (decoding first would have reported a corrupt file instead)."""
    flac = write_song("song.flac", seconds=0.5, sample_rate=22050)
    data = flac.read_bytes()
    bits = (int.from_bytes(data[18:26], "big") >> 36) & 0x1F
    packed = (192_000 << 44) | (7 << 41) | (bits << 36) | (192_000 * 899)
    flac.write_bytes(data[:18] + packed.to_bytes(8, "big") + data[26:])
    big = Settings(models_dir=settings.models_dir, files_dir=settings.files_dir)  # max_duration_s 900 s
    err = _rejected(flac, big)
    assert err.title == "Audio too large once decoded", err.detail
    assert "8 channels x 192000 Hz x 899.0 s" in err.detail and "maximum is 1536 MiB" in err.detail
    small = Settings(models_dir=settings.models_dir, engines={"separation": {"max_decoded_mb": 1.0}})
    ok = write_song("ok.wav", seconds=1.0, sample_rate=44100)  # 2 x 44100 x 4 bytes = 0.34 MiB
    assert ENGINE.input("file").run_probe(ok, small)["channels"] == 2
    err = _rejected(write_song("big.wav", seconds=4.0, sample_rate=44100), small)
    assert err.title == "Audio too large once decoded" and "1.35" not in err.detail


@pytest.mark.parametrize(("value", "label"), [(np.nan, "NaN"), (np.inf, "Inf"), (-np.inf, "-Inf")])
def test_non_finite_samples_are_named(tmp_path, settings, value, label):
    """Regression: ±Inf float WAVs were accepted (then failed in the job) and NaN was called silent."""
    t = np.arange(8000) / 8000
    x = np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2, axis=1).astype(np.float32)
    x[1234, 1] = value
    path = tmp_path / f"{label}.wav"
    sf.write(str(path), x, 8000, subtype="FLOAT")
    err = _rejected(path, settings)
    assert (err.status, err.title) == (422, "Non-finite samples"), err.detail
    assert "NaN or ±Inf" in err.detail and "silent" not in err.detail


def test_many_channels_at_a_high_rate_are_separated_in_bounded_blocks(tmp_path, write_song, make_ctx):
    """8 channels at 96 kHz: hpss processes at 48 kHz in shorter blocks and writes stems at 96 kHz."""
    song = write_song("wide.wav", seconds=0.5, sample_rate=96000, channels=8, subtype="PCM_16")
    result = ENGINE.resolve("run")(SeparationRequest(model="hpss"), lambda p, s="": None, make_ctx(song))
    assert any("48000 Hz" in w for w in result.warnings)
    for output in result.outputs:
        info = sf.info(str(output.path))
        assert (info.samplerate, info.channels) == (96000, 8)
        assert info.frames == pytest.approx(48000, abs=2)
