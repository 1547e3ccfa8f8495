"""Grooves in the feel of a reference MIDI: reading and rejecting files, the template, and measured closeness."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest

from cadenza.engines.base import EngineInputError, RunContext
from cadenza.engines.drums import ENGINE
from cadenza.engines.drums.arrange import Meter
from cadenza.engines.drums.engine import compose, example_reference, load_model, probe_reference
from cadenza.engines.drums.feel import feel_distance
from cadenza.engines.drums.reference import ReferenceError, Template, output_stats, pattern_bias, read_reference
from cadenza.engines.drums.schema import DrumsRequest
from cadenza.engines.drums.styles import load_catalog

GMD = Path(__file__).resolve().parents[2] / "../shared/data/groove"
CACHE: dict[str, Any] = {}


def _midi_file(path: Path, channel: int, pitches: tuple[int, ...], numerator: int = 4) -> Path:
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("time_signature", numerator=numerator, denominator=4))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(100)))
    for pitch in pitches:
        track.append(mido.Message("note_on", channel=channel, note=pitch, velocity=90, time=0))
        track.append(mido.Message("note_off", channel=channel, note=pitch, velocity=0, time=240))
    midi.tracks.append(track)
    midi.save(str(path))
    return path


def test_non_drum_corrupt_and_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    piano = _midi_file(tmp_path / "piano.mid", channel=0, pitches=(36, 38, 42, 60))  # drum-like keys, not channel 10
    with pytest.raises(ReferenceError, match="no drum notes in its first 16 bars: it needs a drum track"):
        read_reference(piano)
    (tmp_path / "text.mid").write_bytes(b"hello, not midi")
    with pytest.raises(ReferenceError, match="not a Standard MIDI File"):
        read_reference(tmp_path / "text.mid")
    (tmp_path / "cut.mid").write_bytes(example_reference(tmp_path).read_bytes()[:30])
    with pytest.raises(ReferenceError, match="cannot be read as MIDI"):
        read_reference(tmp_path / "cut.mid")
    for bad in ("piano.mid", "text.mid", "cut.mid"):
        with pytest.raises(Exception) as info:
            probe_reference(tmp_path / bad, None)
        assert getattr(info.value, "status", None) == 422
    facts = probe_reference(example_reference(tmp_path), None)
    assert facts == {**facts, "tempo_bpm": 96.0, "time_signature": [4, 4], "bars": 2}
    assert facts["instruments"] == ["kick", "snare", "closed_hihat"]


def test_template_and_bias_follow_the_reference(tmp_path: Path) -> None:
    reference = read_reference(example_reference(tmp_path))
    template = Template.of(reference)
    offset, velocity = template.at(4, 1)  # the backbeat snare, 12 ticks late = 0.1 step, velocity 112
    assert offset == pytest.approx(0.1, abs=0.01) and velocity == pytest.approx(112 / 127, abs=0.01)
    hat_off, _ = template.at(2, 2)
    assert hat_off == pytest.approx(20 / 120, abs=0.01)  # swung off-beat hats
    assert np.isnan(template.instrument_offset[7])  # no crash in the reference
    bias = pattern_bias(reference, [False, False, True], "vary")
    assert bias.shape == (48, 512)
    kick_only, snare_only = 1 << 0, 1 << 1
    assert bias[0, kick_only] > 0 > bias[0, snare_only]  # the reference has a kick, no snare, on step 0
    assert bias[4, snare_only] > bias[4, kick_only]
    assert abs(bias[32, kick_only]) < abs(bias[0, kick_only])  # fill bar: the model is freer


@pytest.fixture(scope="module")
def model() -> Any:
    return load_model("groove-transformer", RunContext(workdir=Path("."), models_dir=None, cache=CACHE))


def _test_references(count: int) -> list[Path]:
    with (GMD / "info.csv").open(newline="") as handle:
        rows = [
            r
            for r in csv.DictReader(handle)
            if r["split"] == "test" and r["beat_type"] == "beat" and r["time_signature"] == "4-4"
        ]
    return [GMD / r["midi_filename"] for r in rows[:count]]


def test_grooves_with_a_reference_are_measurably_closer_to_its_feel(model: Any) -> None:
    """The issue's acceptance: with a reference, the output's feel statistics are closer to the reference's than
    grooves of the same style without it (held-out GMD test files as references, 2 seeds each)."""
    style = load_catalog().get("Questlove")
    distances: dict[str, list[dict[str, float]]] = {"none": [], "feel": [], "vary": []}
    for path in _test_references(4):
        reference = read_reference(path)
        tempo = float(min(max(round(reference.tempo_bpm, 2), 60.0), 200.0))
        for seed in range(2):
            for mode in distances:
                params = DrumsRequest(
                    producer_style=style.name,
                    bars=8,
                    tempo=tempo,
                    seed=seed,
                    reference_mode="vary" if mode == "vary" else "feel",
                )
                groove = compose(
                    model, style, params, Meter.of(4, 4), seed, reference=None if mode == "none" else reference
                )
                stats = output_stats(groove.placed, n_bars=8, steps_per_bar=16, tempo_bpm=tempo)
                distances[mode].append(feel_distance(reference.stats(), stats))
    mean = {mode: {k: float(np.nanmean([d[k] for d in rows])) for k in rows[0]} for mode, rows in distances.items()}
    for mode in ("feel", "vary"):
        for key in ("timing_ms", "velocity", "density", "pattern"):
            assert mean[mode][key] < 0.6 * mean["none"][key], (mode, key, mean)
    assert mean["vary"]["pattern"] < mean["feel"]["pattern"]  # variations stay closest to the pattern itself


def test_run_with_a_reference_reports_closeness_and_is_deterministic(tmp_path: Path) -> None:
    reference = example_reference(tmp_path)

    def run(name: str) -> tuple[dict, bytes]:
        workdir = tmp_path / name
        workdir.mkdir()
        ctx = RunContext(workdir=workdir, models_dir=None, cache=CACHE, inputs={"reference_midi": reference})
        params = DrumsRequest.model_validate(
            {"producer_style": "J Dilla", "bars": 4, "seed": 9, "reference_mode": "vary"}
        )
        result = ENGINE.resolve("run")(params, lambda percent, stage="": None, ctx)
        return result.metadata, (workdir / "groove.mid").read_bytes()

    metadata, midi = run("a")
    again, midi_again = run("b")
    assert midi == midi_again
    assert metadata["tempo_bpm"] == 96.0  # the reference's tempo, as none was asked
    report = metadata["reference"]
    assert report["mode"] == "vary" and report["file"]["bars"] == 2
    assert set(report["distance"]) == {"timing_ms", "velocity", "density", "pattern", "swing_percent"}
    assert report["distance"]["pattern"] < 0.2 and report["distance"]["timing_ms"] < 5
    assert set(report["output_feel"]["instruments"]) >= {"kick", "snare", "closed_hihat"}
    document = json.loads((tmp_path / "a" / "pattern.json").read_text())
    assert document["reference"]["mode"] == "vary" and document["reference"]["tempo_bpm"] == 96.0
    assert mido.MidiFile(file=io.BytesIO(midi)).length > 0


def test_a_reference_in_another_meter_is_refused(tmp_path: Path) -> None:
    waltz = _midi_file(tmp_path / "waltz.mid", channel=9, pitches=(36, 42, 38, 42, 42, 42), numerator=3)
    workdir = tmp_path / "job"
    workdir.mkdir()
    ctx = RunContext(workdir=workdir, models_dir=None, cache=CACHE, inputs={"reference_midi": waltz})
    params = DrumsRequest.model_validate({"producer_style": "J Dilla", "bars": 2, "seed": 1, "time_signature": [4, 4]})
    with pytest.raises(EngineInputError, match="reference_midi is in 3/4"):
        ENGINE.resolve("run")(params, lambda percent, stage="": None, ctx)
