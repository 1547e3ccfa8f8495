"""Training smoke test: a few steps on a handful of GMD files write a loadable, better-than-init checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from cadenza.engines.drums.data import load_records
from cadenza.engines.drums.lab.train import (
    TrainConfig,
    WindowSampler,
    eval_windows,
    evaluate_nll,
    record_arrays,
    train,
    train_command,
)
from cadenza.engines.drums.model import GrooveTransformer, ModelConfig, load_checkpoint, load_model

GMD = Path(__file__).resolve().parents[2] / "../shared/data/groove"
SMALL = ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, dropout=0.0, context_steps=32)


def test_sampler_batches_are_masked_windows() -> None:
    records = load_records(GMD, ["train"], limit=6)
    batch = WindowSampler(records, 32, seed=0, tempo_jitter=0.05).sample(8)
    assert batch["pattern"].shape == (8, 32) and batch["vel_bin"].shape == (8, 32, 9)
    assert batch["mask"].dtype == torch.bool and batch["mask"][:, 0].all()
    assert (batch["pattern"][~batch["mask"]] == 0).all()
    assert (batch["prev_details"][:, 0] == 0).all()
    assert torch.allclose(batch["style"].sum(-1), torch.ones(8))


def test_smoke_training_improves_on_initialisation(tmp_path: Path) -> None:
    out = tmp_path / "drums.pt"
    torch.manual_seed(0)
    val = load_records(GMD, ["validation"], limit=4)
    windows = eval_windows([record_arrays(r) for r in val], SMALL.context_steps)
    initial = evaluate_nll(GrooveTransformer(SMALL), windows)["total"]
    cfg = TrainConfig(steps=40, batch_size=8, lr=3e-3, warmup_steps=4, eval_every=20, max_minutes=1.0, threads=1)
    info = train(GMD, out, cfg, model_cfg=SMALL, limit_files=4)
    assert info["validation_nll_per_step"]["total"] < initial - 1.0
    assert info["train_files"] == 4 and info["validation_files"] == 4
    payload = load_checkpoint(out)
    assert payload["info"]["best_step"] in (20, 40)
    model = load_model(out)
    grid = model.generate(
        n_bars=1, steps_per_bar=16, steps_per_beat=4, style_weights={"rock": 1}, fill_bars=[False], tempo_bpm=120
    )
    assert grid.n_steps == 16


def test_train_command_cli(tmp_path: Path) -> None:
    import typer

    app = typer.Typer()
    app.command()(train_command)
    out = tmp_path / "cli.pt"
    args = ["--data", str(GMD), "--out", str(out), "--steps", "2", "--batch-size", "2", "--limit-files", "2"]
    result = CliRunner().invoke(app, [*args, "--eval-every", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    bad = CliRunner().invoke(app, ["--data", str(tmp_path / "missing"), "--out", str(out), "--steps", "1"])
    assert bad.exit_code != 0
