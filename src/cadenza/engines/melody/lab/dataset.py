"""Token sequences of the corpus, split by tune: train / validation (5 % of train, model selection) / test."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cadenza.engines.melody.corpus import LoadReport, Tune, read_corpus, split_of
from cadenza.engines.melody.tokens import encode, tokenizer

VALIDATION_SHARE = 0.05


@dataclass
class Encoded:
    tune: Tune
    ids: list[int]

    @property
    def notes(self) -> int:
        return len(self.tune.notes)


def validation_of(tune_id: str) -> bool:
    digest = hashlib.sha256(f"validation:{tune_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < VALIDATION_SHARE


def load_splits(folders: Sequence[Path]) -> tuple[dict[str, list[Encoded]], LoadReport]:
    """``{"train", "validation", "test"}`` → encoded tunes, and the corpus load report."""
    report = LoadReport()
    splits: dict[str, list[Encoded]] = {"train": [], "validation": [], "test": []}
    for tune in read_corpus(folders, report):
        split = split_of(tune.id)
        if split == "train" and validation_of(tune.id):
            split = "validation"
        splits[split].append(Encoded(tune, encode(tune)))
    return splits, report


def windows(tunes: Sequence[Encoded], length: int) -> list[list[int]]:
    """Each tune cut into windows of at most ``length`` tokens starting at ``BOS, Mode`` then a bar line;
    later windows repeat ``BOS, Mode`` before their first ``Bar`` (so the mode is always in view)."""
    bar = tokenizer()["Bar_None"]
    out = []
    for item in tunes:
        prefix, body = item.ids[:2], item.ids[2:]
        bars = [i for i, token in enumerate(body) if token == bar] or [0]
        start = 0
        while start < len(body):
            chunk = body[start : start + length - 2]
            out.append(prefix + chunk)
            if start + length - 2 >= len(body):
                break
            # next window: the last bar line inside this one that leaves room to move forward
            later = [b for b in bars if start < b <= start + (length - 2) // 2]
            start = later[-1] if later else start + (length - 2) // 2
    return out


def eval_windows(tunes: Sequence[Encoded], length: int) -> list[list[int]]:
    """Non-overlapping windows of each tune (every token after the mode scored exactly once), each starting
    with ``BOS, Mode``; the model's context restarts at each window (a small disadvantage, stated)."""
    out = []
    for item in tunes:
        prefix, body = item.ids[:2], item.ids[2:]
        for start in range(0, len(body), length - 2):
            out.append(prefix + body[start : start + length - 2])
    return out


def batch_tensor(rows: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (batch, length) padded with ``pad``, target mask (batch, length-1): real tokens after the mode)."""
    length = max(len(r) for r in rows)
    ids = np.full((len(rows), length), pad, dtype=np.int64)
    mask = np.zeros((len(rows), length - 1), dtype=np.float32)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, 1 : len(row) - 1] = 1.0  # predicting the mode token is not scored: it is the condition
    return torch.from_numpy(ids), torch.from_numpy(mask)
