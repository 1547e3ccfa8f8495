"""Train the melody transformer on the folk-tune corpus (CPU), keep the best checkpoint on validation loss.

    python -m cadenza.engines.melody.lab.train --data <music21>/corpus/oneills1850 --data <music21>/corpus/ryansMammoth

Windows of ``--context`` tokens (each starting with ``BOS, Mode``) are drawn at random from train tunes;
every ``--eval-every`` steps the validation split (5 % of the train tunes, by tune) is scored and the best
weights are kept. The test split (10 % of tunes, ``corpus.split_of``) is only read at the end, to report
held-out bits per note for the model and for the n-gram baseline fitted on the same train tunes.
"""

from __future__ import annotations

import argparse
import math
import random
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import typer

from cadenza.engines.melody.lab.baseline import NGram
from cadenza.engines.melody.lab.dataset import Encoded, batch_tensor, eval_windows, load_splits, windows
from cadenza.engines.melody.model import (
    DEFAULT_CHECKPOINT,
    MelodyTransformer,
    ModelConfig,
    nats_to_bits,
    parameter_count,
    save_checkpoint,
)
from cadenza.engines.melody.tokens import tokenizer

SOURCES = (
    "O'Neill's Music of Ireland (1850) and Ryan's Mammoth Collection (1883), public domain, as ABC in "
    "music21's corpus (oneills1850, ryansMammoth)"
)


@torch.no_grad()
def heldout_nll(net: MelodyTransformer, tunes: Sequence[Encoded], context: int, batch: int = 16) -> dict[str, float]:
    """Total NLL (nats) of the tunes' tokens after the mode token, in non-overlapping windows of ``context``
    tokens (``eval_windows``), with the token and note counts."""
    net.eval()
    pad = tokenizer()["PAD_None"]
    total, tokens = 0.0, 0
    notes = sum(item.notes for item in tunes)
    rows = eval_windows(tunes, context)
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        ids, mask = batch_tensor(chunk, pad)
        logits = net(ids[:, :-1])
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        total += float((nll * mask).sum())
        tokens += int(mask.sum())
    return {"nats": total, "tokens": tokens, "notes": notes}


def baseline_nll(model: NGram, tunes: Sequence[Encoded]) -> dict[str, float]:
    total = sum(model.nll(item.ids, start=2) for item in tunes)
    return {"nats": total, "tokens": sum(len(item.ids) - 2 for item in tunes), "notes": sum(i.notes for i in tunes)}


def per_note_bits(result: dict[str, float]) -> float:
    """Bits per note of a held-out result (NaN without notes)."""
    return nats_to_bits(result["nats"] / result["notes"]) if result["notes"] else float("nan")


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    splits, report = load_splits(args.data)
    tok = tokenizer()
    pad = tok["PAD_None"]
    train_rows = windows(splits["train"], args.context)
    cfg = ModelConfig(
        vocab_size=len(tok),
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=args.heads,
        d_ff=4 * args.d_model,
        context_tokens=2 * args.context,
    )
    net = MelodyTransformer(cfg)
    optimiser = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    print(
        f"{len(splits['train'])} train / {len(splits['validation'])} validation / {len(splits['test'])} test tunes; "
        f"{len(train_rows)} windows; {parameter_count(net):,} parameters",
        flush=True,
    )
    best, best_state, history = math.inf, None, []
    deadline = started + 60 * args.minutes
    step = 0
    while step < args.steps and time.perf_counter() < deadline:
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / args.steps)))
        for group in optimiser.param_groups:
            group["lr"] = lr
        net.train()
        ids, mask = batch_tensor(random.sample(train_rows, args.batch), pad)
        loss = net.loss(ids, mask)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimiser.step()
        step += 1
        if step % args.eval_every == 0 or step == args.steps:
            val = heldout_nll(net, splits["validation"], args.context)
            per_token = val["nats"] / max(val["tokens"], 1) if val["tokens"] else float(loss.item())
            history.append(
                {"step": step, "train_loss": round(loss.item(), 4), "validation_nats_per_token": round(per_token, 4)}
            )
            print(
                f"step {step}: train {float(loss):.3f}, validation {per_token:.4f} nats/token "
                f"({per_note_bits(val):.3f} bits/note), {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            if per_token < best:
                best = per_token
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    if best_state is not None:
        net.load_state_dict(best_state)
    train_seconds = time.perf_counter() - started
    model_test = heldout_nll(net, splits["test"], args.context)
    ngram = NGram(len(tok), order=args.ngram_order).fit(item.ids for item in splits["train"] + splits["validation"])
    base_test = baseline_nll(ngram, splits["test"])
    metrics = {
        "test_tunes": len(splits["test"]),
        "test_notes": model_test["notes"],
        "model_bits_per_note": round(per_note_bits(model_test), 4),
        "model_nats_per_token": round(model_test["nats"] / model_test["tokens"], 4),
        "baseline_bits_per_note": round(per_note_bits(base_test), 4),
        "baseline_nats_per_token": round(base_test["nats"] / base_test["tokens"], 4),
        "baseline": f"interpolated absolute-discounting {args.ngram_order}-gram on the same tokens",
        "best_validation_nats_per_token": round(best, 4),
    }
    info = {
        "version": "melody-transformer-1.0",
        "description": "Folk melodies and continuations (REMI tokens over key-normalised tunes)",
        "licence": "Apache-2.0 (weights); training data public domain",
        "data_source": SOURCES,
        "corpus": {
            "kept": report.kept,
            "with_pickup": report.with_pickup,
            "dropped": dict(report.dropped),
            "train": len(splits["train"]),
            "validation": len(splits["validation"]),
            "test": len(splits["test"]),
        },
        "command": "python -m cadenza.engines.melody.lab.train " + shlex.join(sys.argv[1:]),
        "steps": step,
        "train_seconds": round(train_seconds, 1),
        "parameters": parameter_count(net),
        "history": history,
        "metrics": metrics,
    }
    save_checkpoint(args.out, net, info)
    print(
        f"test: model {metrics['model_bits_per_note']} vs baseline {metrics['baseline_bits_per_note']} bits/note; "
        f"wrote {args.out}",
        flush=True,
    )
    return info


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True, help="Folder of .abc files (repeatable).")
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=192)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--ngram-order", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    train(parser.parse_args(argv))


if __name__ == "__main__":
    main()


def train_command(
    data: list[Path] = typer.Option(
        ..., "--data", help="Folder of .abc files (repeatable): music21's corpus/oneills1850, …"
    ),
    out: Path = typer.Option(DEFAULT_CHECKPOINT, "--out", help="Checkpoint to write."),
    minutes: float = typer.Option(40.0, "--minutes", help="Wall-clock budget."),
    steps: int = typer.Option(3000, "--steps", min=1),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(2, "--threads", min=1),
) -> None:
    """Train the melody transformer on folk tunes (CPU); keeps the best checkpoint on validation loss."""
    argv = [a for folder in data for a in ("--data", str(folder))]
    main(
        [
            *argv,
            "--out",
            str(out),
            "--minutes",
            str(minutes),
            "--steps",
            str(steps),
            "--seed",
            str(seed),
            "--threads",
            str(threads),
        ]
    )
