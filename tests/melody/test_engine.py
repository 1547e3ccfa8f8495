"""The melody engine end to end with the committed checkpoint: constraints, formats, seeds, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mido
import pytest
import soundfile
import symusic

from cadenza.engines.base import EngineInputError, RunContext, UploadRejected
from cadenza.engines.melody import ENGINE
from cadenza.engines.melody.corpus import TICKS_PER_QUARTER, bar_ticks
from cadenza.engines.melody.engine import example_seed, probe_seed
from cadenza.music.keys import parse_key
from cadenza.music.midi import melody_midi_bytes

CACHE: dict[str, Any] = {}


def run(tmp_path: Path, name: str = "job", inputs: dict | None = None, **fields: Any) -> tuple[dict, Path]:
    workdir = tmp_path / name
    workdir.mkdir(parents=True)
    params, _ = ENGINE.validate({"seed": 1, **fields}, None)
    facts = {k: ENGINE.input(k).run_probe(v, None) for k, v in (inputs or {}).items()}
    ENGINE.check_inputs(params, facts, None)
    ctx = RunContext(workdir=workdir, models_dir=tmp_path / "models", cache=CACHE, inputs=inputs or {})
    result = ENGINE.resolve("run")(params, lambda percent, stage="": None, ctx)
    return result.metadata, workdir


def midi_notes(path: Path) -> list[tuple[int, int, int]]:
    score = symusic.Score(str(path))
    scale = score.tpq // TICKS_PER_QUARTER
    return [(n.time // scale, n.duration // scale, n.pitch) for n in score.tracks[0].notes]


@pytest.mark.parametrize(
    ("key", "meter"), [("D major", (6, 8)), ("E minor", (4, 4)), ("A dorian", (2, 2)), ("G major", (3, 4))]
)
def test_constraints_hold_in_every_key_and_meter(tmp_path: Path, key: str, meter: tuple[int, int]) -> None:
    metadata, workdir = run(tmp_path, key=key, time_signature=list(meter), bars=8, num_samples=2, seed=3)
    scale = set(parse_key(key).scale_pcs())
    length = bar_ticks(*meter)
    tonic = parse_key(key).tonic_pc
    for index in (1, 2):
        notes = midi_notes(workdir / f"melody_{index}.mid")
        assert notes and all(p % 12 in scale for _, _, p in notes)  # balanced profile: no chromatic notes
        assert all(a[0] + a[1] <= b[0] for a, b in zip(notes, notes[1:], strict=False))  # monophonic
        assert all(o // length == (o + d - 1) // length for o, d, _ in notes)  # no note crosses a bar line
        onset, duration, pitch = notes[-1]
        assert onset + duration == 8 * length  # the last bar is exactly full
        assert (pitch - tonic) % 12 in (0, 7)  # ends on the tonic or the fifth
        midi = mido.MidiFile(workdir / f"melody_{index}.mid")
        assert sum(m.time for m in midi.tracks[0]) == 8 * length * (480 // TICKS_PER_QUARTER)
        assert all(60 <= p <= 96 for _, _, p in notes)  # the flute's range (instrument 73)
    assert metadata["key"] == key and metadata["time_signature"] == list(meter)


def test_abc_notes_and_tokens_outputs(tmp_path: Path) -> None:
    metadata, workdir = run(tmp_path, key="D major", time_signature=[6, 8], formats=["abc", "notes", "tokens", "wav"])
    audio, sample_rate = soundfile.read(workdir / "melody.wav")
    assert sample_rate > 0 and audio.shape[0] > sample_rate and abs(audio).max() > 0.01  # an audible preview
    abc = (workdir / "melody.abc").read_text()
    assert "M:6/8" in abc and "K:D" in abc and abc.rstrip().endswith("|]")
    parsed = symusic.Score.from_abc(abc)
    scale = parsed.tpq // TICKS_PER_QUARTER
    assert [(n.time // scale, n.pitch) for n in parsed.tracks[0].notes] == [
        (o, p) for o, _, p in midi_notes(workdir / "melody.mid")
    ]
    notes = json.loads((workdir / "melody.notes.json").read_text())
    assert notes[0]["name"][0] in "ABCDEFG" and {"onset_s", "duration_beats", "bar", "beat"} <= set(notes[0])
    tokens = json.loads((workdir / "melody.tokens.json").read_text())
    assert all(t["logprob"] <= 0 for t in tokens) and any(t["token"].startswith("Pitch_") for t in tokens)


def test_same_seed_same_bytes_and_samples_differ(tmp_path: Path) -> None:
    _, first = run(tmp_path, "a", key="G major", time_signature=[6, 8], num_samples=8, seed=5)
    _, again = run(tmp_path, "b", key="G major", time_signature=[6, 8], num_samples=8, seed=5)
    files = sorted(p.name for p in first.iterdir())
    assert files == sorted(p.name for p in again.iterdir())
    assert all((first / f).read_bytes() == (again / f).read_bytes() for f in files)
    melodies = {tuple(midi_notes(first / f"melody_{i}.mid")) for i in range(1, 9)}
    assert len(melodies) == 8  # eight distinct melodies


def test_a_seed_is_kept_verbatim_and_continued(tmp_path: Path) -> None:
    seed = example_seed(tmp_path)
    seed_notes = midi_notes(seed)
    metadata, workdir = run(tmp_path, inputs={"seed_midi": seed}, bars=6, seed=2)
    assert metadata["key"] == "D major" and metadata["time_signature"] == [6, 8]  # from the seed
    notes = midi_notes(workdir / "melody.mid")
    assert notes[: len(seed_notes)] == seed_notes and len(notes) > len(seed_notes)
    end = seed_notes[-1][0] + seed_notes[-1][1]
    assert notes[len(seed_notes)][0] >= end  # the continuation starts after the seed
    _, without = run(tmp_path, "without", inputs={"seed_midi": seed}, bars=6, seed=2, include_seed=False)
    assert midi_notes(without / "melody.mid")[0][2] == notes[len(seed_notes)][2]


def _midi(tmp_path: Path, name: str, channel: int, notes: list[tuple[int, int, int]]) -> Path:
    end = max(t + d for t, d, _ in notes)
    data = melody_midi_bytes(
        [(t, d, p, 90) for t, d, p in notes], tempo_bpm=100, numerator=4, denominator=4, total_ticks=end, program=0
    )
    if channel == 9:  # rewrite as a drum track
        midi = mido.MidiFile(file=__import__("io").BytesIO(data))
        for message in midi.tracks[0]:
            if hasattr(message, "channel"):
                message.channel = 9
        midi.save(str(tmp_path / name))
    else:
        (tmp_path / name).write_bytes(data)
    return tmp_path / name


def test_unusable_seeds_are_422_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "text.mid").write_bytes(b"not midi")
    (tmp_path / "cut.mid").write_bytes(example_seed(tmp_path).read_bytes()[:40])
    _midi(tmp_path, "drums.mid", 9, [(0, 120, 36), (480, 120, 38)])
    empty = tmp_path / "empty.mid"
    mido.MidiFile(ticks_per_beat=480, tracks=[mido.MidiTrack()]).save(str(empty))
    expected = {
        "text.mid": "not a Standard MIDI File",
        "cut.mid": "cannot be read",
        "drums.mid": "only drum notes",
        "empty.mid": "no notes",
    }
    for name, reason in expected.items():
        with pytest.raises(UploadRejected) as info:
            probe_seed(tmp_path / name, None)
        assert info.value.status == 422 and reason in info.value.detail
    chords = _midi(tmp_path, "chords.mid", 0, [(0, 480, 60), (0, 480, 64), (0, 480, 67), (480, 480, 62)])
    facts = probe_seed(chords, None)
    assert any("reduced to its top line" in w for w in facts["warnings"])
    two_bars = _midi(tmp_path, "two.mid", 0, [(i * 480, 480, 60 + i) for i in range(8)])
    with pytest.raises(EngineInputError, match="takes 2 bars of 4/4"):
        params, _ = ENGINE.validate({"bars": 2}, None)
        ENGINE.check_inputs(params, {"seed_midi": probe_seed(two_bars, None)}, None)


def test_a_ragged_seed_is_refused_at_submit_when_the_generator_would_refuse_it(tmp_path: Path) -> None:
    """A seed of 2 1/8 bars takes 3 bars: ``bars=3`` is refused at submit (it was accepted, then the job always
    failed), ``bars=4`` is accepted and generates; the count is made in the requested meter (in 2/4 the seed
    takes 5 bars)."""
    ragged = _midi(tmp_path, "ragged.mid", 0, [(i * 240, 240, 60 + i % 5) for i in range(17)])
    facts = probe_seed(ragged, None)
    assert facts["bars"] == 3 and not facts["ends_on_bar_line"]
    params, _ = ENGINE.validate({"bars": 3}, None)
    with pytest.raises(EngineInputError, match="takes 3 bars of 4/4; ask for more than 3 bars"):
        ENGINE.check_inputs(params, {"seed_midi": facts}, None)
    params, _ = ENGINE.validate({"bars": 4, "time_signature": [2, 4]}, None)
    with pytest.raises(EngineInputError, match="takes 5 bars of 2/4"):
        ENGINE.check_inputs(params, {"seed_midi": facts}, None)
    params, _ = ENGINE.validate({"bars": 4, "seed": 3}, None)
    ENGINE.check_inputs(params, {"seed_midi": facts}, None)
    metadata, workdir = run(tmp_path, inputs={"seed_midi": ragged}, bars=4, seed=3, time_signature=[4, 4])
    notes = midi_notes(workdir / "melody.mid")
    assert max(t + d for t, d, _ in notes) == 4 * bar_ticks(4, 4)


def test_numpy_stepper_matches_the_torch_network() -> None:
    """The sampler's NumPy stepper (folded LayerNorms, ring-buffer cache, RoPE) computes the network's own
    next-token log-probabilities."""
    import numpy as np
    import torch

    from cadenza.engines.melody.generate import NumpyStepper
    from cadenza.engines.melody.model import load_checkpoint

    net, _ = load_checkpoint()
    ids = torch.randint(0, net.cfg.vocab_size, (1, 300), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        logits = net(ids)
    expected = torch.log_softmax(logits[0], -1).numpy()
    stepper = NumpyStepper(net)
    got = np.stack([stepper.feed(int(token)) for token in ids[0]])
    assert np.abs(got - expected).max() < 1e-3


@pytest.mark.parametrize(("key", "meter"), [("Bb major", (6, 8)), ("E minor", (4, 4))])
def test_musicxml_holds_the_midi_notes_spelled_in_the_key(tmp_path: Path, key: str, meter: tuple[int, int]) -> None:
    from music21 import converter

    _, workdir = run(tmp_path, key=key, time_signature=list(meter), bars=8, formats=["musicxml"], seed=5)
    data = (workdir / "melody.musicxml").read_bytes()
    score = converter.parse(data, format="musicxml")
    written = [
        (round(n.offset * TICKS_PER_QUARTER), round(n.quarterLength * TICKS_PER_QUARTER), n.pitch.midi)
        for n in score.flatten().notes
    ]
    assert written == midi_notes(workdir / "melody.mid")  # no note crosses a bar line, so none is tied
    measures = score.parts[0].getElementsByClass("Measure")
    assert len(measures) == 8
    signature = score.flatten().getElementsByClass("KeySignature")[0]
    assert signature.sharps == (-2 if key == "Bb major" else 1)
    names = {n.pitch.name for n in score.flatten().notes}
    assert not names & ({"A#", "D#"} if key == "Bb major" else {"G-", "C-"})  # spelled from the key
    _, again = run(tmp_path, "again", key=key, time_signature=list(meter), bars=8, formats=["musicxml"], seed=5)
    assert (again / "melody.musicxml").read_bytes() == data  # no date, no random ids
