"""Style classifier on 2-bar 4/4 grid windows, used to measure the style fidelity of generated grooves.

A small MLP in torch over the flattened (32 steps × 9 classes × {hit, velocity, offset}) window,
trained on GMD **train** beat windows (hop 1 bar), epochs selected by accuracy on validation
windows. Labels are primary styles with at least ``MIN_TRAIN_FILES`` train files. Its accuracy on
real test windows is the ceiling against which generated windows are judged (a generated window
"has" the style it was conditioned on when the classifier predicts that style).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cadenza.engines.drums.data import Grid, GrooveRecord, iter_windows
from cadenza.music.drum_map import N_CLASSES

WINDOW_BARS = 2
STEPS_PER_BAR = 16
WINDOW_STEPS = WINDOW_BARS * STEPS_PER_BAR
MIN_TRAIN_FILES = 20


def window_features(grid: Grid) -> np.ndarray:
    """(32, 9) grid → (32·9·3,) float32 features: hits, velocity, offset (offset ×2 to ±1)."""
    if grid.n_steps != WINDOW_STEPS:
        raise ValueError(f"classifier windows have {WINDOW_STEPS} steps, got {grid.n_steps}")
    return np.concatenate(
        (grid.hits.astype(np.float32).ravel(), grid.velocity.ravel(), 2.0 * grid.offset.ravel())
    ).astype(np.float32)


def classifier_styles(train_records: Sequence[GrooveRecord], min_files: int = MIN_TRAIN_FILES) -> tuple[str, ...]:
    """Primary styles with at least ``min_files`` train files (beats and fills), most files first."""
    counts = Counter(r.style for r in train_records if r.split == "train")
    return tuple(s for s, n in counts.most_common() if n >= min_files)


def style_windows(records: Sequence[GrooveRecord], styles: Sequence[str], hop_bars: int = WINDOW_BARS):
    """Features (n, 864) and labels (n,) of all 2-bar 4/4 beat windows whose style is in ``styles``."""
    feats, labels = [], []
    keep = [r for r in records if r.style in styles and not r.is_fill and r.steps_per_bar == STEPS_PER_BAR]
    for rec, _start, window in iter_windows(keep, WINDOW_BARS, hop_bars):
        feats.append(window_features(window))
        labels.append(styles.index(rec.style))
    if not feats:
        return np.zeros((0, WINDOW_STEPS * N_CLASSES * 3), np.float32), np.zeros(0, np.int64)
    return np.stack(feats), np.asarray(labels, dtype=np.int64)


@dataclass
class StyleClassifier:
    styles: tuple[str, ...]
    net: nn.Module

    @torch.inference_mode()
    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n, 864) features → (n,) predicted style indices into ``styles``."""
        self.net.eval()
        return self.net(torch.from_numpy(features)).argmax(-1).numpy()

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float((self.predict(features) == labels).mean()) if len(labels) else float("nan")


def train_classifier(
    train_records: Sequence[GrooveRecord],
    val_records: Sequence[GrooveRecord],
    seed: int = 0,
    epochs: int = 30,
    styles: Sequence[str] | None = None,
) -> tuple[StyleClassifier, dict]:
    """Train the MLP; returns the classifier (best validation accuracy) and a summary dict.

    Classes are weighted by inverse frequency so rock does not swamp the rest. Raises ValueError
    if there are no train windows.
    """
    styles = tuple(styles or classifier_styles(train_records))
    x_train, y_train = style_windows(train_records, styles, hop_bars=1)
    x_val, y_val = style_windows(val_records, styles)
    if not len(y_train):
        raise ValueError("no training windows for the style classifier")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(x_train.shape[1], 256),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(128, len(styles)),
    )
    counts = np.bincount(y_train, minlength=len(styles)).astype(np.float32)
    weights = torch.from_numpy(counts.sum() / np.maximum(counts, 1) / len(styles))
    optim = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-3)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    clf = StyleClassifier(styles, net)
    best_acc, best_state, best_epoch = -1.0, None, 0
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(yt), generator=generator)
        for i in range(0, len(order), 128):
            idx = order[i : i + 128]
            loss = loss_fn(net(xt[idx]), yt[idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
        acc = clf.accuracy(x_val, y_val) if len(y_val) else 0.0
        if acc > best_acc:
            best_acc, best_epoch = acc, epoch + 1
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    summary = {
        "styles": list(styles),
        "train_windows": int(len(y_train)),
        "validation_windows": int(len(y_val)),
        "validation_accuracy": best_acc,
        "best_epoch": best_epoch,
    }
    return clf, summary
