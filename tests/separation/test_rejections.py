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
