"""Demucs through a local model folder (a tiny random HTDemucs saved as users install real ones)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from cadenza.engines.base import EngineInputError, JobCancelled
from cadenza.engines.separation import ENGINE, SeparationRequest
from cadenza.settings import Settings

pytest.importorskip("demucs")

TINY = ["drums", "bass", "other", "vocals"]


def test_list_models_shows_present_and_missing(tiny_demucs_models_dir):
    models = {m.name: m for m in ENGINE.models(tiny_demucs_models_dir)}
    assert models["hpss"].weights_present and models["hpss"].size_bytes == 0
    tiny = models["tiny"]
    assert tiny.weights_present and tiny.size_bytes > 0 and tiny.missing_files == []
    assert "tinysig0" not in models  # the checkpoint belongs to the bag, not listed twice
    for name in ("htdemucs", "htdemucs_ft", "htdemucs_6s", "mdx_extra"):
        assert not models[name].weights_present
        assert models[name].missing_files[0].startswith(f"demucs/{name}.yaml")
    assert any("demucs/955717e8-8726e21a.th" in f for f in models["htdemucs"].missing_files)
    assert len(models["htdemucs_ft"].missing_files) == 5  # the yaml and 4 checkpoints


def test_a_bag_with_a_missing_checkpoint_is_not_present(tiny_demucs_models_dir, tmp_path):
    folder = tmp_path / "demucs"
    folder.mkdir()
    (folder / "half.yaml").write_text("models: ['tinysig0', 'absent1']\n")
    for th in (tiny_demucs_models_dir / "demucs").glob("*.th"):
        (folder / th.name).write_bytes(th.read_bytes())
    half = {m.name: m for m in ENGINE.models(tmp_path)}["half"]
    assert not half.weights_present and half.missing_files == ["demucs/absent1.th"]


def test_default_model_is_the_present_demucs(tiny_demucs_models_dir, tmp_path):
    settings = Settings(models_dir=tiny_demucs_models_dir, files_dir=tmp_path)
    ENGINE.resolve("validate_request")(SeparationRequest(stems=["vocals"]), settings)
    with pytest.raises(EngineInputError, match="valid: drums, bass, other, vocals"):
        ENGINE.resolve("validate_request")(SeparationRequest(model="tiny", stems=["piano"]), settings)


def test_full_run_mono_22k_mp3_in(write_song, make_ctx, tiny_demucs_models_dir, recorder):
    # 22.05 kHz mono MP3 in: resampled to the model's 44.1 kHz, stems back at 22.05 kHz mono.
    song = write_song("song.mp3", seconds=3.0, sample_rate=22050, channels=1, format="MP3")
    ctx = make_ctx(song, tiny_demucs_models_dir)
    progress = recorder()
    result = ENGINE.resolve("run")(SeparationRequest(shifts=0, output_format="flac"), progress, ctx)
    assert result.metadata["model"] == "tiny" and result.metadata["sources"] == TINY
    assert [o.name for o in result.outputs] == [f"{s}.flac" for s in TINY]
    for out in result.outputs:
        info = sf.info(str(out.path))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert info.frames == pytest.approx(3 * 22050, abs=2)
        assert out.metadata["bit_depth"] == 16
    assert "tiny" in str(ctx.cache.keys())  # kept loaded for the next job
    assert progress.calls[-1][0] == 100.0 and len(progress.calls) > 6


def test_stereo_wav_two_stems_in_each_format(write_song, make_ctx, tiny_demucs_models_dir):
    song = write_song("song.wav", seconds=2.5)
    cache: dict = {}
    for fmt, depth in (("wav", 24), ("mp3", "mp3")):
        ctx = make_ctx(song, tiny_demucs_models_dir, cache)
        params = SeparationRequest(model="tiny", two_stems="vocals", output_format=fmt, pcm_type="PCM_24", shifts=0)
        result = ENGINE.resolve("run")(params, lambda p, s="": None, ctx)
        assert [o.name for o in result.outputs] == [f"vocals.{fmt}", f"no_vocals.{fmt}"]
        for out in result.outputs:
            info = sf.info(str(out.path))
            assert (info.samplerate, info.channels) == (44100, 2)
            assert info.frames / 44100 == pytest.approx(2.5, abs=0.01)
            assert out.metadata["bit_depth"] == depth
            out.path.unlink()


def test_long_input_uses_blocks_and_same_seed_same_bytes(write_song, make_ctx, tiny_demucs_models_dir, monkeypatch):
    from cadenza.engines.separation import engine

    # Blocks of 1.5 s with 0.5 s crossfades: exercises the top-level chunking on a 4 s input.
    monkeypatch.setattr(engine, "DEMUCS_BLOCK_S", 1.5)
    monkeypatch.setattr(engine, "DEMUCS_FADE_S", 0.5)
    song = write_song("song.wav", seconds=4.0)
    runs = []
    for _ in range(2):
        ctx = make_ctx(song, tiny_demucs_models_dir)
        result = ENGINE.resolve("run")(
            SeparationRequest(model="tiny", shifts=1, seed=7, pcm_type="FLOAT"), lambda p, s="": None, ctx
        )
        runs.append([o.path.read_bytes() for o in result.outputs])
        stems = [sf.read(str(o.path), dtype="float32")[0] for o in result.outputs]
        assert all(s.shape == (4 * 44100, 2) and np.all(np.isfinite(s)) for s in stems)
        for o in result.outputs:
            o.path.unlink()
    assert runs[0] == runs[1]


def test_standalone_hybrid_demucs_checkpoint(write_song, make_ctx, tmp_path):
    # A single v3 Hybrid Demucs checkpoint named <sig>.th (no bag, no checksum): listed and usable.
    import warnings

    import torch
    from demucs.hdemucs import HDemucs
    from demucs.states import get_state

    (tmp_path / "models" / "demucs").mkdir(parents=True)
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HDemucs(sources=TINY, channels=4)
    args, kwargs = model._init_args_kwargs
    package = {"klass": HDemucs, "args": args, "kwargs": kwargs, "state": get_state(model, None)}
    torch.save(package, tmp_path / "models" / "demucs" / "hdtiny.th")
    listed = {m.name: m for m in ENGINE.models(tmp_path / "models")}
    assert listed["hdtiny"].weights_present and listed["hdtiny"].path.endswith("hdtiny.th")
    ctx = make_ctx(write_song("song.wav", seconds=2.0), tmp_path / "models")
    result = ENGINE.resolve("run")(
        SeparationRequest(model="hdtiny", shifts=0, stems=["bass"]), lambda p, s="": None, ctx
    )
    assert [o.name for o in result.outputs] == ["bass.wav"]
    assert sf.info(str(result.outputs[0].path)).frames == 2 * 44100


def test_cancel_inside_demucs_leaves_no_stems(write_song, make_ctx, tiny_demucs_models_dir, recorder):
    ctx = make_ctx(write_song("song.wav", seconds=3.0), tiny_demucs_models_dir)
    progress = recorder(cancel_at=3)
    with pytest.raises(JobCancelled):
        ENGINE.resolve("run")(SeparationRequest(model="tiny", shifts=0), progress, ctx)
    assert list(ctx.workdir.iterdir()) == []


def test_segment_longer_than_the_model_is_rejected(write_song, make_ctx, tiny_demucs_models_dir):
    ctx = make_ctx(write_song("song.wav", seconds=1.0), tiny_demucs_models_dir)
    with pytest.raises(EngineInputError, match="segment_s must be <= 1.00"):
        ENGINE.resolve("run")(SeparationRequest(model="tiny", segment_s=3.0), lambda p, s="": None, ctx)
    assert list(ctx.workdir.iterdir()) == []


def test_seeded_shifts_leave_the_process_random_state_alone(write_song, make_ctx, tiny_demucs_models_dir):
    # Demucs draws its shifts from the global ``random``; the engine seeds it per block and restores it.
    import random

    ctx = make_ctx(write_song("song.wav", seconds=1.0), tiny_demucs_models_dir)
    random.seed(123)
    expected = random.Random(123).random()
    ENGINE.resolve("run")(SeparationRequest(model="tiny", shifts=1, seed=7), lambda p, s="": None, ctx)
    assert random.random() == expected
