"""Training of the groove transformer on the GMD train split, model selection on validation loss.

``cadenza train drums --data <GMD folder>`` runs :func:`train_command`. The test split is never
read here. Windows of ``context_steps`` 16th steps start on random bar lines of random train files
(fill files oversampled so the fill conditioning has data); the checkpoint with the lowest
validation NLL per step is kept.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cadenza.engines.drums.data import (
    GMD_STYLES,
    GrooveRecord,
    encode_patterns,
    load_records,
    metric_positions,
    offset_bins,
    velocity_bins,
)
from cadenza.engines.drums.model import DEFAULT_CHECKPOINT, GrooveTransformer, ModelConfig, save_checkpoint

FILL_FRACTION = 0.2  # share of training windows drawn from GMD fill files


@dataclass
class TrainConfig:
    steps: int = 5000
    batch_size: int = 32
    lr: float = 1.5e-3
    weight_decay: float = 0.01
    warmup_steps: int = 150
    eval_every: int = 250
    max_minutes: float = 25.0
    seed: int = 0
    threads: int = 2
    tempo_jitter: float = 0.05
    style_dropout: float = 0.1


def record_arrays(rec: GrooveRecord, styles: tuple[str, ...] = GMD_STYLES) -> dict[str, np.ndarray]:
    """Per-step arrays of one record for the network (see ``GrooveTransformer.forward``)."""
    grid = rec.grid
    n = grid.n_steps
    metric = metric_positions(n, rec.steps_per_bar, rec.steps_per_beat)
    details = np.concatenate((grid.velocity, grid.offset), axis=1).astype(np.float32)
    prev_details = np.concatenate((np.zeros((1, details.shape[1]), np.float32), details[:-1]), axis=0)
    style = np.zeros(len(styles), np.float32)
    style[styles.index(rec.style)] = 1.0
    return {
        "pattern": encode_patterns(grid.hits),
        "vel_bin": velocity_bins(grid.velocity),
        "off_bin": offset_bins(grid.offset),
        "prev_details": prev_details,
        "fill": np.full(n, int(rec.is_fill), np.int64),
        "style": style,
        "tempo_bpm": np.float32(rec.tempo_bpm),
        **metric,
    }


_STEP_KEYS = ("pattern", "vel_bin", "off_bin", "prev_details", "fill", "pos_in_beat", "beat_in_bar", "beats_per_bar")


def make_batch(windows: list[tuple[dict[str, np.ndarray], int, int]]) -> dict[str, torch.Tensor]:
    """Stack windows ``(arrays, start, length)`` into padded (B, length_max, …) tensors with a mask.

    The first step of each window sees no previous step (its ``prev_details`` are zeroed).
    """
    length = max(w[2] for w in windows)
    out: dict[str, list] = {k: [] for k in (*_STEP_KEYS, "bar_start", "mask", "style", "tempo_bpm")}
    for arrays, start, n in windows:
        pad = length - n
        for key in (*_STEP_KEYS, "bar_start"):
            chunk = arrays[key][start : start + n].copy()
            if key == "prev_details":
                chunk[0] = 0.0
            if key == "beats_per_bar":
                chunk = np.pad(chunk, (0, pad), mode="edge")
            else:
                chunk = np.pad(chunk, [(0, pad)] + [(0, 0)] * (chunk.ndim - 1))
            out[key].append(chunk)
        out["mask"].append(np.arange(length) < n)
        out["style"].append(arrays["style"])
        out["tempo_bpm"].append(arrays["tempo_bpm"])
    return {k: torch.from_numpy(np.stack(v)) for k, v in out.items()}


def eval_windows(arrays_list: list[dict[str, np.ndarray]], context: int) -> list[tuple]:
    """Deterministic non-overlapping windows of ≤ ``context`` steps covering every step once."""
    windows = []
    for arrays in arrays_list:
        n = len(arrays["pattern"])
        for start in range(0, n, context):
            windows.append((arrays, start, min(context, n - start)))
    return windows


@torch.inference_mode()
def evaluate_nll(net: GrooveTransformer, windows: list[tuple], batch_size: int = 64) -> dict[str, float]:
    """Mean NLL per step (nats) over the windows: total and its pattern/velocity/offset components."""
    net.eval()
    sums = {"pattern": 0.0, "velocity": 0.0, "offset": 0.0}
    steps = 0
    for i in range(0, len(windows), batch_size):
        batch = make_batch(windows[i : i + batch_size])
        nll = net(batch)
        mask = batch["mask"].float()
        for key in sums:
            sums[key] += float((nll[key] * mask).sum())
        steps += int(mask.sum())
    result = {k: v / max(steps, 1) for k, v in sums.items()}
    result["total"] = sum(result.values())
    result["steps"] = steps
    return result


class WindowSampler:
    """Random training windows: a file (beat files weighted by length, fill files by FILL_FRACTION),
    then a random bar line inside it; optional tempo jitter (multiplicative, uniform ±tempo_jitter)."""

    def __init__(self, records: list[GrooveRecord], context: int, seed: int, tempo_jitter: float) -> None:
        self.arrays = [record_arrays(r) for r in records]
        self.records = records
        self.context = context
        self.rng = random.Random(seed)
        self.tempo_jitter = tempo_jitter
        self.fill_idx = [i for i, r in enumerate(records) if r.is_fill]
        self.beat_idx = [i for i, r in enumerate(records) if not r.is_fill]
        self.beat_weights = [max(1, records[i].n_bars) for i in self.beat_idx]

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        windows = []
        for _ in range(batch_size):
            if self.fill_idx and (not self.beat_idx or self.rng.random() < FILL_FRACTION):
                i = self.rng.choice(self.fill_idx)
            else:
                i = self.rng.choices(self.beat_idx, weights=self.beat_weights)[0]
            rec, arrays = self.records[i], self.arrays[i]
            bar = self.rng.randrange(max(1, rec.n_bars))
            start = bar * rec.steps_per_bar
            n = min(self.context, rec.grid.n_steps - start)
            if self.tempo_jitter:
                arrays = dict(arrays)
                arrays["tempo_bpm"] = np.float32(rec.tempo_bpm * (1 + self.rng.uniform(-1, 1) * self.tempo_jitter))
            windows.append((arrays, start, n))
        return make_batch(windows)


def style_tempi(records: list[GrooveRecord]) -> dict[str, float]:
    """Median tempo (BPM) of the beat files of each style (of its fill files if it has no beats)."""
    by_style: dict[str, list[float]] = {}
    for rec in sorted(records, key=lambda r: r.is_fill):
        if not rec.is_fill or rec.style not in by_style:
            by_style.setdefault(rec.style, []).append(rec.tempo_bpm)
    return {s: round(float(statistics.median(v)), 1) for s, v in sorted(by_style.items())}


def train(
    data_dir: Path,
    out: Path,
    cfg: TrainConfig,
    model_cfg: ModelConfig | None = None,
    limit_files: int | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Train and write the best-validation checkpoint to ``out``. Returns a summary dict.

    ``limit_files``: use at most this many files per split (smoke tests). Raises
    FileNotFoundError if ``data_dir`` is not the GMD folder.
    """
    console = console or Console(stderr=True)
    model_cfg = model_cfg or ModelConfig()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    started = time.perf_counter()
    train_records = load_records(data_dir, ["train"], limit=limit_files)
    val_records = load_records(data_dir, ["validation"], limit=limit_files)
    if not train_records or not val_records:
        raise ValueError(f"no train/validation files found in {data_dir}")
    sampler = WindowSampler(train_records, model_cfg.context_steps, cfg.seed, cfg.tempo_jitter)
    val_windows = eval_windows([record_arrays(r) for r in val_records], model_cfg.context_steps)
    net = GrooveTransformer(model_cfg)
    n_params = sum(p.numel() for p in net.parameters())
    embeddings = {id(m.weight) for m in net.modules() if isinstance(m, torch.nn.Embedding)}
    decay = [p for p in net.parameters() if p.ndim >= 2 and id(p) not in embeddings]
    no_decay = [p for p in net.parameters() if not (p.ndim >= 2 and id(p) not in embeddings)]
    optim = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )

    def lr_at(step: int) -> float:
        """Linear warm-up, then cosine decay to 5 % over whichever runs out first: steps or wall-clock budget
        (on a shared CPU the budget usually ends first; the schedule still completes its decay)."""
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        by_steps = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        by_time = (time.perf_counter() - train_started) / max(1.0, deadline - train_started)
        progress = min(1.0, max(by_steps, by_time))
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    best: dict[str, Any] = {"total": float("inf")}
    best_state = None
    history = []
    deadline = started + cfg.max_minutes * 60
    dropout_rng = torch.Generator().manual_seed(cfg.seed)
    train_started = time.perf_counter()
    step = 0
    stopped_early = False
    with Progress(
        TextColumn("[bold]train drums"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    ) as bar:
        task = bar.add_task("train", total=cfg.steps, status="")
        running = None
        for step in range(1, cfg.steps + 1):
            net.train()
            for group in optim.param_groups:
                group["lr"] = lr_at(step - 1)
            batch = sampler.sample(cfg.batch_size)
            # style dropout: some windows see no style (a zero vector), so the model also learns the
            # style-free distribution that classifier-free guidance contrasts with (Ho & Salimans 2022)
            drop = torch.rand(cfg.batch_size, generator=dropout_rng) < cfg.style_dropout
            batch["style"][drop] = 0.0
            nll = net(batch)
            mask = batch["mask"].float()
            loss = sum((nll[k] * mask).sum() for k in nll) / mask.sum()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optim.step()
            loss_value = float(loss.detach())
            running = loss_value if running is None else 0.98 * running + 0.02 * loss_value
            last = step == cfg.steps or time.perf_counter() > deadline
            if step % cfg.eval_every == 0 or last:
                val = evaluate_nll(net, val_windows)
                history.append({"step": step, "train_nll": running, "val_nll": val["total"]})
                if val["total"] < best["total"]:
                    best = {**val, "step": step}
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                bar.update(task, status=f"train {running:.3f}  val {val['total']:.3f}  best {best['total']:.3f}")
            bar.update(task, advance=1)
            if time.perf_counter() > deadline:
                stopped_early = step < cfg.steps
                break
    assert best_state is not None
    net.load_state_dict(best_state)
    elapsed = time.perf_counter() - started
    info = {
        "version": "groove-transformer-1.0",
        "description": "Groove transformer: 16th-note drum grooves with velocity and micro-timing, conditioned on "
        "GMD style, beat/fill, tempo and metric position",
        "data_source": "Groove MIDI Dataset v1.0.0 (Gillick et al., ICML 2019), CC BY 4.0",
        "architecture": "causal transformer over 16th-note steps, 512-way hit pattern + per-hit velocity/offset bins",
        "parameters": n_params,
        "data": "Groove MIDI Dataset v1.0.0 (Gillick et al., ICML 2019), CC BY 4.0; train split",
        "licence": "CC BY 4.0 (weights derived from GMD; credit Gillick, Roberts, Engel, Eck, Bamman, ICML 2019)",
        "train_config": asdict(cfg),
        "model_config": asdict(model_cfg),
        "train_files": len(train_records),
        "validation_files": len(val_records),
        "best_step": best["step"],
        "steps_run": step,
        "stopped_by_time_limit": stopped_early,
        "validation_nll_per_step": {k: best[k] for k in ("total", "pattern", "velocity", "offset")},
        "train_seconds": round(elapsed, 1),
        "history": history,
    }
    save_checkpoint(out, net, GMD_STYLES, info, style_tempi(train_records))
    return info


def train_command(
    data: Path = typer.Option(..., "--data", help="Groove MIDI Dataset folder (with info.csv)."),
    out: Path = typer.Option(DEFAULT_CHECKPOINT, "--out", help="Checkpoint file to write."),
    steps: int = typer.Option(TrainConfig.steps, "--steps", min=1, help="Optimizer steps."),
    batch_size: int = typer.Option(TrainConfig.batch_size, "--batch-size", min=1),
    lr: float = typer.Option(TrainConfig.lr, "--lr", min=0.0),
    max_minutes: float = typer.Option(TrainConfig.max_minutes, "--max-minutes", min=0.0, help="Wall-clock budget."),
    eval_every: int = typer.Option(TrainConfig.eval_every, "--eval-every", min=1),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(TrainConfig.threads, "--threads", min=1, help="torch CPU threads."),
    limit_files: int | None = typer.Option(None, "--limit-files", min=1, help="Files per split (smoke runs)."),
) -> None:
    """Train the drums groove transformer on GMD (train split; selection on validation NLL)."""
    console = Console(stderr=True)
    cfg = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        max_minutes=max_minutes,
        eval_every=eval_every,
        seed=seed,
        threads=threads,
        warmup_steps=min(TrainConfig.warmup_steps, max(1, steps // 10)),
    )
    info = train(data, out, cfg, limit_files=limit_files, console=console)
    val = info["validation_nll_per_step"]
    console.print(
        f"wrote {out} ({info['parameters']:,} parameters) in {info['train_seconds']:.0f} s; "
        f"best step {info['best_step']}, validation NLL {val['total']:.4f} nats/step"
    )
