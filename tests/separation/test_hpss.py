"""The built-in hpss model through the engine's real run path."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from cadenza.engines.base import JobCancelled
from cadenza.engines.separation import ENGINE, SeparationRequest, hpss, pipeline
from cadenza.music import audio


def _run(song, make_ctx, recorder=None, **params):
    ctx = make_ctx(song)
    progress = recorder or (lambda percent, stage="": None)
    return ENGINE.resolve("run")(SeparationRequest(model="hpss", **params), progress, ctx), ctx


def test_stems_sum_back_to_the_mix(write_song, make_ctx, recorder):
    song = write_song("song.wav", seconds=4.0, subtype="FLOAT")
    progress = recorder()
    result, ctx = _run(song, make_ctx, progress, pcm_type="FLOAT", segment_s=1.5)
    assert [o.name for o in result.outputs] == ["drums.wav", "harmonic.wav"]
    mix = audio.read_audio(song)
    stems = [audio.read_audio(o.path) for o in result.outputs]
    assert all(s.shape == mix.shape for s in stems)
    assert np.max(np.abs(sum(stems) - mix)) < 1e-5
    # Real separation: the noise bursts (percussive) go to drums, the tones to harmonic.
    drums, harmonic = stems
    hits = np.zeros(mix.shape[1], dtype=bool)  # where make_mix put its 30 ms noise bursts
    for start in range(0, mix.shape[1], int(0.25 * 44100)):
        hits[start : start + int(0.03 * 44100)] = True
    assert np.sum(drums[:, hits] ** 2) > 0.1 * np.sum(mix[:, hits] ** 2)
    assert np.sum(drums[:, hits] ** 2) > 50 * np.sum(drums[:, ~hits] ** 2)
    assert np.sum(harmonic[:, ~hits] ** 2) > 0.95 * np.sum(mix[:, ~hits] ** 2)
    # Progress: monotonic, reaches 100, and several calls across blocks.
    percents = [p for p, _ in progress.calls]
    assert percents == sorted(percents) and percents[-1] == 100.0 and len(percents) >= 5
    assert not [p for p in ctx.workdir.iterdir() if p.name.startswith(".")]  # temporaries removed


def test_margin_adds_a_residual_and_stems_still_sum(write_song, make_ctx):
    song = write_song("song.wav", seconds=2.0, subtype="FLOAT")
    result, _ = _run(song, make_ctx, pcm_type="FLOAT", margin=3.0)
    assert [o.name for o in result.outputs] == ["drums.wav", "harmonic.wav", "residual.wav"]
    total = sum(audio.read_audio(o.path) for o in result.outputs)
    assert np.max(np.abs(total - audio.read_audio(song))) < 1e-5
    assert np.sum(audio.read_audio(result.outputs[2].path) ** 2) > 0


def test_blocked_processing_equals_whole_file(write_song, tmp_path):
    song = write_song("song.wav", seconds=7.0, sample_rate=22050, subtype="FLOAT")
    plan = pipeline.StemPlan.build(hpss.sources(), None, None)
    outputs = {}
    for label, block_s in (("whole", 60.0), ("blocked", 1.5)):
        out = tmp_path / label
        out.mkdir()
        hop = hpss.stft_size(22050)[1]
        block = round(block_s * 22050 / hop) * hop
        paths, _ = pipeline.separate_blocks(
            song,
            lambda x, sub: hpss.separate_block(x, 1.0, 22050),
            plan,
            out,
            block_frames=block,
            context_frames=hpss.context_frames(22050),
            fade_frames=0,
            progress=lambda f: None,
        )
        outputs[label] = audio.read_audio(paths["drums"])
    assert outputs["whole"].shape == outputs["blocked"].shape == (2, 7 * 22050)
    assert np.max(np.abs(outputs["whole"] - outputs["blocked"])) < 1e-4


@pytest.mark.parametrize(
    ("output_format", "pcm_type", "rate", "subtype", "depth"),
    [
        ("wav", "PCM_16", None, "PCM_16", 16),
        ("wav", "PCM_24", 22050, "PCM_24", 24),
        ("wav", "FLOAT", 48000, "FLOAT", "float"),
        ("flac", "PCM_24", None, "PCM_24", 24),
        ("mp3", "PCM_16", 32000, "MPEG_LAYER_III", "mp3"),
    ],
)
def test_output_formats(write_song, make_ctx, output_format, pcm_type, rate, subtype, depth):
    song = write_song("song.ogg", seconds=2.0, format="OGG", subtype="VORBIS")
    result, _ = _run(song, make_ctx, output_format=output_format, pcm_type=pcm_type, sample_rate=rate, mp3_bitrate=128)
    expected_rate = rate or 44100
    assert len(result.outputs) == 2
    for out in result.outputs:
        assert out.path.suffix == f".{output_format}" and out.path.exists()
        assert out.media_type == audio.OUTPUT_FORMATS[output_format][1]
        info = sf.info(str(out.path))
        assert (info.subtype, info.samplerate, info.channels) == (subtype, expected_rate, 2)
        assert info.frames / expected_rate == pytest.approx(2.0, abs=0.01)
        meta = out.metadata
        assert (meta["sample_rate"], meta["bit_depth"]) == (expected_rate, depth)
        assert meta["duration_s"] == pytest.approx(2.0, abs=0.01)
        assert -40.0 < meta["peak_dbfs"] <= 0.0
    assert result.metadata["stems"] == [o.metadata for o in result.outputs]


def test_mono_input_gives_mono_stems(write_song, make_ctx):
    result, _ = _run(write_song("mono.aiff", seconds=1.0, channels=1, format="AIFF"), make_ctx)
    assert all(sf.info(str(o.path)).channels == 1 for o in result.outputs)


def test_two_stems_and_stem_subset(write_song, make_ctx, tmp_path):
    song = write_song("song.wav", seconds=2.0, subtype="FLOAT")
    result, ctx = _run(song, make_ctx, two_stems="drums", pcm_type="FLOAT")
    assert [o.name for o in result.outputs] == ["drums.wav", "no_drums.wav"]
    total = sum(audio.read_audio(o.path) for o in result.outputs)
    assert np.max(np.abs(total - audio.read_audio(song))) < 1e-5
    for o in result.outputs:
        o.path.unlink()
    result, _ = _run(song, make_ctx, stems=["harmonic"])
    assert [o.name for o in result.outputs] == ["harmonic.wav"]
    assert sorted(p.name for p in ctx.workdir.iterdir()) == ["harmonic.wav"]


def test_rescale_scales_every_stem_by_one_factor(tmp_path):
    rate = 8000
    loud = np.stack([np.linspace(-2.0, 2.0, rate, dtype=np.float32)] * 2)  # peak 2.0 (+6 dBFS)
    quiet = 0.25 * loud
    tmp = {}
    for name, x in (("a", loud), ("b", quiet)):
        tmp[name] = tmp_path / f".{name}.wav"
        sf.write(str(tmp[name]), x.T, rate, subtype="FLOAT")
    peaks = {"a": 2.0, "b": 0.5}
    for clip in ("rescale", "clamp"):
        out = tmp_path / clip
        out.mkdir()
        written, gain = pipeline.finalize_stems(
            tmp, peaks, out, output_format="wav", pcm_type="FLOAT", mp3_bitrate_kbps=320,
            sample_rate=rate, clip=clip, progress=lambda f: None,
        )  # fmt: skip
        a, b = (audio.read_audio(w.path) for w in written)
        if clip == "rescale":
            assert gain == 0.5
            np.testing.assert_allclose(a, 0.5 * loud, atol=1e-6)
            np.testing.assert_allclose(b, 0.5 * quiet, atol=1e-6)
        else:
            assert gain == 1.0
            np.testing.assert_allclose(a, np.clip(loud, -1, 1), atol=1e-6)
            np.testing.assert_allclose(b, quiet, atol=1e-6)
        assert max(w.peak for w in written) == pytest.approx(1.0)


def test_cancel_between_blocks_leaves_no_stems(write_song, make_ctx, recorder):
    song = write_song("song.wav", seconds=6.0)
    ctx = make_ctx(song)
    progress = recorder(cancel_at=4)
    with pytest.raises(JobCancelled):
        ENGINE.resolve("run")(SeparationRequest(model="hpss", segment_s=1.0), progress, ctx)
    assert len(progress.calls) == 4
    assert list(ctx.workdir.iterdir()) == []


def test_same_request_same_bytes(write_song, tmp_path, make_ctx):
    song = write_song("song.flac", seconds=2.0, format="FLAC")
    first, ctx = _run(song, make_ctx, output_format="flac")
    data = [o.path.read_bytes() for o in first.outputs]
    for o in first.outputs:
        o.path.unlink()
    second, _ = _run(song, make_ctx, output_format="flac")
    assert [o.path.read_bytes() for o in second.outputs] == data
