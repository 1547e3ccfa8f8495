"""The drums engine end to end with the committed checkpoint: files, determinism, styles, meters, sections."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest
import soundfile as sf
import symusic

from cadenza.engines.base import EngineInputError, EngineResult, JobCancelled, RunContext
from cadenza.engines.drums import ENGINE
from cadenza.engines.drums.engine import CACHE_PREFIX, checkpoint_path, load_model, unload_model
from cadenza.engines.drums.schema import DrumsRequest
from cadenza.engines.drums.styles import load_catalog
from cadenza.settings import Settings

CACHE: dict[str, Any] = {}  # one loaded model for the whole module, as in a worker process


def generate(
    tmp_path: Path, name: str = "out", settings: Any = None, **fields: Any
) -> tuple[EngineResult, dict, bytes]:
    workdir = tmp_path / name
    workdir.mkdir()
    ctx = RunContext(workdir=workdir, models_dir=tmp_path / "models", cache=CACHE, settings=settings)
    params = DrumsRequest.model_validate({"producer_style": "J Dilla", "bars": 2, "tempo": 90, "seed": 1, **fields})
    result = ENGINE.resolve("run")(params, lambda percent, stage="": None, ctx)
    document = json.loads((workdir / "pattern.json").read_text())
    return result, document, (workdir / "groove.mid").read_bytes()


def test_committed_checkpoint_is_the_default_model() -> None:
    from cadenza.engines.drums.model import DEFAULT_CHECKPOINT

    assert checkpoint_path("groove-transformer", None) == DEFAULT_CHECKPOINT


def test_run_writes_midi_json_and_metadata(tmp_path: Path) -> None:
    calls: list[tuple[float, str]] = []
    workdir = tmp_path / "job"
    workdir.mkdir()
    ctx = RunContext(workdir=workdir, models_dir=tmp_path, cache=CACHE)
    params = DrumsRequest.model_validate({"producer_style": "jdilla", "bars": 4, "tempo": 90, "seed": 5})
    result = ENGINE.resolve("run")(params, lambda percent, stage="": calls.append((percent, stage)), ctx)

    assert [o.name for o in result.outputs] == ["groove.mid", "pattern.json"]
    assert [o.media_type for o in result.outputs] == ["audio/midi", "application/json"]
    assert sorted(p.name for p in workdir.iterdir()) == ["groove.mid", "pattern.json"]
    percents = [p for p, _ in calls]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert sum(stage == "generating" for _, stage in calls) >= 4  # at least once per bar from the model

    midi = mido.MidiFile(workdir / "groove.mid")
    assert midi.ticks_per_beat == 480 and len(midi.tracks) == 1
    track = midi.tracks[0]
    assert sum(msg.time for msg in track) == 4 * 1920 and track[-1].type == "end_of_track"
    metas = {msg.type: msg for msg in track if msg.is_meta}
    assert mido.tempo2bpm(metas["set_tempo"].tempo) == pytest.approx(90.0, abs=1e-3)
    assert (metas["time_signature"].numerator, metas["time_signature"].denominator) == (4, 4)
    assert "J Dilla" in metas["track_name"].name
    note_ons = [msg for msg in track if msg.type == "note_on"]
    assert note_ons and {msg.channel for msg in note_ons} == {9}
    score = symusic.Score(str(workdir / "groove.mid"))
    assert score.tracks[0].is_drum and score.end() <= 4 * 1920

    document = json.loads((workdir / "pattern.json").read_text())
    header = {k: document[k] for k in ("tempo_bpm", "time_signature", "ppq", "bars", "style", "seed")}
    assert header == {"tempo_bpm": 90.0, "time_signature": [4, 4], "ppq": 480, "bars": 4, "style": "J Dilla", "seed": 5}
    hits = document["hits"]
    assert len(hits) >= len(note_ons) > 8
    pitches = {36, 37, 38, 42, 43, 46, 47, 49, 50, 51}
    for hit in hits:
        assert hit["pitch"] in pitches and 1 <= hit["velocity"] <= 127 and 0 <= hit["step"] < 16
        intended = hit["bar"] * 1920 + hit["step"] * 120 + hit["offset_ticks"]
        assert hit["tick"] == intended % (4 * 1920) and hit["wrapped"] == (hit["tick"] != intended)
        assert hit["offset_ms"] == pytest.approx(hit["offset_ticks"] * 60000 / (90 * 480), abs=1e-3)
    assert {(n.time, n.pitch) for n in score.tracks[0].notes} == {(h["tick"], h["pitch"]) for h in hits}

    meta = result.metadata
    assert meta["style"] == "J Dilla" and meta["bars"] == 4 and meta["tempo_bpm"] == 90.0 and meta["seed"] == 5
    assert meta["time_signature"] == [4, 4] and meta["pattern_type"] == "verse" and meta["steps_generated"] == 64
    assert meta["model_version"] and meta["groove_duration_s"] == pytest.approx(4 * 4 * 60 / 90)
    assert meta["compute_s"] > 0 and meta["warnings"] == [] and result.warnings == []
    assert CACHE[CACHE_PREFIX + "groove-transformer"].version == meta["model_version"]


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    _, doc_a, midi_a = generate(tmp_path, "a", seed=42)
    _, doc_b, midi_b = generate(tmp_path, "b", seed=42)
    _, doc_c, midi_c = generate(tmp_path, "c", seed=43)
    assert midi_a == midi_b and doc_a == doc_b
    assert midi_a != midi_c and doc_a["hits"] != doc_c["hits"]


def test_random_seed_is_reported_and_reproduces(tmp_path: Path) -> None:
    result, document, midi = generate(tmp_path, "random", seed=None)
    seed = result.metadata["seed"]
    assert isinstance(seed, int) and seed >= 0 and document["seed"] == seed
    _, again, midi_again = generate(tmp_path, "again", seed=seed)
    assert midi_again == midi and again == document


def test_tempo_outside_preferred_range_warns(tmp_path: Path) -> None:
    result, _, _ = generate(tmp_path, tempo=150)
    assert len(result.warnings) == 1 and "80–98 BPM" in result.warnings[0]
    assert result.metadata["warnings"] == result.warnings
    assert (
        ENGINE.resolve("validate_request")(DrumsRequest(producer_style="J Dilla", tempo=150), Settings())
        == result.warnings
    )


def groove_stats(hits: list[dict], bars: int) -> dict[str, Any]:
    timed = [h for h in hits if not h["roll"]]
    odd = [h["offset_ticks"] for h in timed if h["step"] % 2 and h["instrument"] in ("closed_hihat", "ride", "snare")]
    even = [h["offset_ticks"] for h in timed if h["step"] % 2 == 0]
    loud_snares = [h for h in hits if h["instrument"] == "snare" and h["velocity"] >= 70 and not h["ghost"]]
    hat_ticks = sorted(h["tick"] for h in hits if h["instrument"] == "closed_hihat")
    return {
        "swing_ticks": float(np.mean(odd) - np.mean(even)) if odd and even else 0.0,
        "offset_std_ticks": float(np.std([h["offset_ticks"] for h in timed])),
        "hihats_per_bar": len(hat_ticks) / bars,
        "loud_snare_steps": {h["step"] for h in loud_snares},
        # hi-hat notes closer than a 16th (120 ticks) apart: 32nd (60) or 16th-triplet (80) rolls
        "fast_hat_gaps": int(np.sum((np.diff(hat_ticks) > 20) & (np.diff(hat_ticks) < 100))) if hat_ticks else 0,
    }


def test_j_dilla_and_metro_boomin_differ_measurably(tmp_path: Path) -> None:
    bars = 4
    _, dilla, _ = generate(tmp_path, "dilla", producer_style="J Dilla", bars=bars, tempo=100, seed=3)
    _, metro, _ = generate(tmp_path, "metro", producer_style="Metro Boomin", bars=bars, tempo=100, seed=3)
    d, m = groove_stats(dilla["hits"], bars), groove_stats(metro["hits"], bars)
    assert d["swing_ticks"] > 10 and abs(m["swing_ticks"]) < 8  # 58 % MPC swing = 19 ticks vs straight
    assert d["offset_std_ticks"] > m["offset_std_ticks"] + 5  # loose vs quantised feel
    assert m["loud_snare_steps"] == {8}  # half-time snare on beat 3 (no fills in 4 verse bars)
    assert {4, 12} <= d["loud_snare_steps"]  # backbeat on 2 and 4
    assert m["hihats_per_bar"] >= 16 > d["hihats_per_bar"]
    assert m["fast_hat_gaps"] >= 4 > d["fast_hat_gaps"]  # 32nd / triplet rolls only in trap
    assert sum(h["ghost"] for h in dilla["hits"]) > 0 == sum(h["ghost"] for h in metro["hits"])


@pytest.mark.parametrize(("ts", "steps", "beat"), [((3, 4), 12, 4), ((6, 8), 12, 6)])
def test_three_four_and_six_eight(tmp_path: Path, ts: tuple[int, int], steps: int, beat: int) -> None:
    bars = 4
    result, document, midi_bytes = generate(
        tmp_path, producer_style="John Bonham", bars=bars, tempo=90, time_signature=list(ts), humanize=False
    )
    midi = mido.MidiFile(file=io.BytesIO(midi_bytes))
    track = midi.tracks[0]
    ts_msg = next(msg for msg in track if msg.type == "time_signature")
    assert (ts_msg.numerator, ts_msg.denominator) == ts
    assert sum(msg.time for msg in track) == bars * steps * 120  # 1440 ticks per bar, not 4/4 cut to length
    assert (document["steps_per_bar"], document["steps_per_beat"]) == (steps, beat)
    assert result.metadata["steps_generated"] == bars * steps
    hits = document["hits"]
    assert all(0 <= h["step"] < steps for h in hits) and {h["bar"] for h in hits} == set(range(bars))
    assert all(h["offset_ticks"] == 0 for h in hits)  # humanize=false: on the grid
    strong = [0] if ts == (3, 4) else [0, 6]
    downbeats = [
        h["velocity"] for h in hits if h["step"] in strong and h["instrument"] in ("kick", "closed_hihat", "ride")
    ]
    weak = [h["velocity"] for h in hits if h["step"] % 2 and h["instrument"] in ("kick", "closed_hihat", "ride")]
    assert downbeats and (not weak or np.mean(downbeats) > np.mean(weak))


def test_pattern_type_changes_density_crash_and_fills(tmp_path: Path) -> None:
    runs = {
        kind: generate(tmp_path, kind, producer_style="Questlove", bars=4, pattern_type=kind, seed=9)[1]
        for kind in ("intro", "chorus")
    }
    intro, chorus = runs["intro"], runs["chorus"]
    assert intro["fill_bars"] == [False, False, False, True] and chorus["fill_bars"] == [False, False, False, True]
    assert len(intro["hits"]) < len(chorus["hits"])
    assert any(h["instrument"] == "crash" and h["bar"] == 0 and h["step"] == 0 for h in chorus["hits"])
    assert any(h["instrument"] == "open_hihat" and h["step"] == 14 for h in chorus["hits"])
    assert any(h["ghost"] and h["instrument"] == "snare" and h["velocity"] <= 34 for h in chorus["hits"])  # Questlove
    _, verse, _ = generate(tmp_path, "verse", producer_style="Questlove", bars=8, pattern_type="verse", seed=9)
    assert verse["fill_bars"] == [False] * 7 + [True]


def test_audio_previews(tmp_path: Path) -> None:
    result, _, _ = generate(tmp_path, bars=1, formats=["wav", "flac", "mp3"])
    names = [o.name for o in result.outputs]
    assert names == ["groove.mid", "pattern.json", "groove.wav", "groove.flac", "groove.mp3"]
    assert [o.media_type for o in result.outputs[2:]] == ["audio/wav", "audio/flac", "audio/mpeg"]
    for output in result.outputs[2:]:
        info = sf.info(str(output.path))
        assert info.samplerate == 44100 and info.channels == 2 and info.duration >= 4 * 60 / 90 - 0.05
        audio, _ = sf.read(str(output.path), dtype="float32")
        assert np.sqrt(np.mean(audio**2)) > 1e-3 and np.max(np.abs(audio)) <= 1.0


def test_bad_soundfont_is_an_input_error(tmp_path: Path) -> None:
    settings = Settings(engines={"drums": {"soundfont_path": tmp_path / "missing.sf2"}})
    with pytest.raises(EngineInputError, match="SoundFont not found"):
        generate(tmp_path, "missing", bars=1, formats=["wav"], settings=settings)
    assert not list((tmp_path / "missing").iterdir())  # checked before anything is written


def test_cancel_propagates(tmp_path: Path) -> None:
    def progress(percent: float, stage: str = "") -> None:
        if stage == "generating" and percent > 5:
            raise JobCancelled()

    ctx = RunContext(workdir=tmp_path, models_dir=tmp_path, cache=CACHE)
    with pytest.raises(JobCancelled):
        ENGINE.resolve("run")(DrumsRequest(producer_style="J Dilla", bars=2, seed=1), progress, ctx)
    assert not list(tmp_path.iterdir())


def test_model_cache_hooks_and_list_models(tmp_path: Path) -> None:
    ctx = RunContext(workdir=tmp_path, models_dir=tmp_path, cache={})
    model = load_model("groove-transformer", ctx)
    assert ctx.cache[CACHE_PREFIX + "groove-transformer"] is model is load_model("groove-transformer", ctx)
    unload_model("groove-transformer", ctx)
    assert not ctx.cache
    models = ENGINE.models(tmp_path)
    main = next(m for m in models if m.name == "groove-transformer")
    assert main.weights_present and main.engine == "drums" and main.size_bytes and main.size_bytes > 100_000
    assert "CC BY 4.0" in main.licence and "Groove MIDI Dataset" in main.data_source
    assert main.version == model.version


def test_list_models_sees_a_changed_checkpoint(tmp_path: Path) -> None:
    """Checkpoint headers are cached per file version: a rewritten checkpoint is listed with its new info."""
    import shutil

    from cadenza.engines.drums.model import DEFAULT_CHECKPOINT, update_checkpoint_info

    mine = tmp_path / "drums" / "my-groove.pt"
    mine.parent.mkdir()
    shutil.copyfile(DEFAULT_CHECKPOINT, mine)
    listed = next(m for m in ENGINE.models(tmp_path) if m.name == "my-groove")
    assert listed.weights_present and listed.path == str(mine)
    update_checkpoint_info(mine, {"version": "my-groove-2", "description": "retrained " * 20})
    again = next(m for m in ENGINE.models(tmp_path) if m.name == "my-groove")
    assert again.version == "my-groove-2" and again.version != listed.version


def test_style_without_weights_is_an_input_error(tmp_path: Path) -> None:
    styles = tmp_path / "styles.yaml"
    styles.write_text(
        "styles:\n  - {name: Ghost Model, model_id: no-such-model, description: x,"
        " preferred_tempo_range: [80, 100], conditioning: {rock: 1}}\n"
    )
    settings = Settings(engines={"drums": {"styles_path": styles}}, models_dir=tmp_path)
    params = DrumsRequest.model_validate(
        {"producer_style": "ghost model", "seed": 1}, context={"catalog": load_catalog(styles)}
    )
    with pytest.raises(EngineInputError, match="no-such-model"):
        ENGINE.resolve("validate_request")(params, settings)
    ctx = RunContext(workdir=tmp_path, models_dir=tmp_path, cache={}, settings=settings)
    with pytest.raises(EngineInputError, match="no weights"):
        ENGINE.resolve("run")(params, lambda percent, stage="": None, ctx)
    assert not list(tmp_path.glob("*.mid"))
