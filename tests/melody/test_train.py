"""A tiny training run end to end (never the real training): checkpoint written, loadable, with its metrics."""

from __future__ import annotations

import math
from pathlib import Path

import music21

from cadenza.engines.melody.corpus import split_tunes
from cadenza.engines.melody.lab.baseline import NGram
from cadenza.engines.melody.lab.train import main
from cadenza.engines.melody.model import load_checkpoint
from cadenza.engines.melody.tokens import tokenizer

SOURCE = Path(music21.__file__).parent / "corpus" / "oneills1850" / "0001-0050.abc"


def test_tiny_training_run_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    corpus = tmp_path / "tiny"
    corpus.mkdir()
    tunes = split_tunes(SOURCE.read_text(encoding="latin-1"))[:40]
    (corpus / "tiny.abc").write_text("\n".join(tunes), encoding="latin-1")
    out = tmp_path / "tiny.pt"
    args = ["--data", str(corpus), "--out", str(out), "--steps", "3", "--eval-every", "2", "--batch", "4"]
    main([*args, "--context", "64", "--d-model", "32", "--layers", "1", "--heads", "2", "--ngram-order", "3"])
    net, info = load_checkpoint(out)
    assert info["steps"] == 3 and info["parameters"] == sum(p.numel() for p in net.parameters())
    assert info["corpus"]["kept"] >= 35 and info["history"] and "python -m" in info["command"]
    assert info["metrics"]["test_tunes"] >= 0


def test_ngram_baseline_is_a_distribution() -> None:
    model = NGram(len(tokenizer()), order=3).fit([[1, 3, 4, 5, 6, 4, 5, 6, 2]])
    for context in ([4, 5], [9, 9], []):
        total = sum(model.prob(context, token) for token in range(len(tokenizer())))
        assert math.isclose(total, 1.0, rel_tol=1e-9)
    assert model.prob([4, 5], 6) > model.prob([4, 5], 7)
