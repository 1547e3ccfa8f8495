"""The committed groove-transformer checkpoint: loading, generation contract, determinism, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special

from cadenza.engines.drums import decoder
from cadenza.engines.drums.model import (
    DEFAULT_CHECKPOINT,
    GMD_STYLES,
    DrumModel,
    Grid,
    filter_logits,
    load_model,
    sampling_noise,
)


@pytest.fixture(scope="module")
def model() -> DrumModel:
    return load_model()


def _generate(model: DrumModel, **overrides) -> Grid:
    kwargs = dict(
        n_bars=2,
        steps_per_bar=16,
        steps_per_beat=4,
        style_weights={"funk": 1.0},
        fill_bars=[False, True],
        tempo_bpm=100.0,
        seed=7,
    )
    kwargs.update(overrides)
    return model.generate(**kwargs)


def test_checkpoint_is_committed_and_small(model: DrumModel) -> None:
    assert DEFAULT_CHECKPOINT.is_file()
    assert DEFAULT_CHECKPOINT.stat().st_size < 8 * 1024 * 1024
    assert model.styles == GMD_STYLES
    assert model.version.startswith("groove-transformer")
    assert model.info["parameters"] > 100_000
    assert set(model.info["style_tempo_bpm"]) <= set(GMD_STYLES)
    assert "CC BY 4.0" in model.info["licence"]


def test_generate_shapes_and_ranges(model: DrumModel) -> None:
    grid = _generate(model, n_bars=4, fill_bars=[False] * 4)
    assert grid.hits.shape == grid.velocity.shape == grid.offset.shape == (64, 9)
    assert grid.hits.dtype == bool and grid.velocity.dtype == np.float32 and grid.offset.dtype == np.float32
    assert grid.hits.any()
    assert (grid.velocity[grid.hits] > 0).all() and grid.velocity.max() <= 1.0
    assert grid.offset.min() >= -0.5 and grid.offset.max() < 0.5
    assert not grid.velocity[~grid.hits].any() and not grid.offset[~grid.hits].any()


def test_same_seed_same_grid_other_seed_differs(model: DrumModel) -> None:
    a, b, c = _generate(model), _generate(model), _generate(model, seed=8)
    for name in ("hits", "velocity", "offset"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not (np.array_equal(a.hits, c.hits) and np.array_equal(a.velocity, c.velocity))


@pytest.mark.parametrize(("steps_per_bar", "steps_per_beat"), [(12, 4), (12, 6), (14, 2), (20, 4)])
def test_other_meters(model: DrumModel, steps_per_bar: int, steps_per_beat: int) -> None:
    grid = _generate(model, n_bars=3, fill_bars=[False] * 3, steps_per_bar=steps_per_bar, steps_per_beat=steps_per_beat)
    assert grid.n_steps == 3 * steps_per_bar


def test_style_mixture_and_long_generation(model: DrumModel) -> None:
    """A mixture of styles works, and 10 bars (> the 64-step context) slide the key/value window."""
    grid = _generate(model, n_bars=10, fill_bars=[False] * 9 + [True], style_weights={"hiphop": 2, "jazz": 1})
    assert grid.n_steps == 160 and grid.hits[64:].any()


@pytest.mark.parametrize(
    "overrides",
    [
        {"style_weights": {"trap": 1.0}},
        {"style_weights": {}},
        {"style_weights": {"rock": 0.0}},
        {"style_weights": {"rock": -1.0}},
        {"temperature": 0.05},
        {"temperature": 2.5},
        {"top_k": 101},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"fill_bars": [False]},
        {"n_bars": 0},
        {"tempo_bpm": 5.0},
        {"steps_per_beat": 9},
        {"style_guidance": 0.5},
        {"style_guidance": 6.0},
    ],
)
def test_bad_arguments_raise_value_error(model: DrumModel, overrides: dict) -> None:
    with pytest.raises(ValueError):
        _generate(model, **overrides)


def test_progress_is_called_per_bar_and_may_raise(model: DrumModel) -> None:
    seen: list[float] = []
    _generate(model, n_bars=3, fill_bars=[False] * 3, progress=seen.append)
    assert len(seen) >= 3 and seen[-1] == pytest.approx(100.0) and seen == sorted(seen)

    class Stop(Exception):
        pass

    def stop(_fraction: float) -> None:
        raise Stop

    with pytest.raises(Stop):
        _generate(model, progress=stop)


def test_temperature_changes_density(model: DrumModel) -> None:
    """Low temperature concentrates on likely patterns: fewer distinct patterns than a hot sample."""
    cold = [_generate(model, n_bars=4, fill_bars=[False] * 4, temperature=0.1, seed=s) for s in range(3)]
    hot = [_generate(model, n_bars=4, fill_bars=[False] * 4, temperature=2.0, seed=s) for s in range(3)]

    def distinct(grids: list[Grid]) -> int:
        return len({tuple(row) for g in grids for row in g.hits.astype(int)})

    assert distinct(cold) < distinct(hot)


def test_filter_logits_top_k_and_top_p() -> None:
    logits = np.array([3.0, 2.0, 1.0, 0.0, -1.0])  # probabilities 0.636, 0.234, 0.086, 0.032, 0.012
    assert np.isfinite(filter_logits(logits, top_k=2, top_p=1.0)).tolist() == [True, True, False, False, False]
    assert np.isfinite(filter_logits(logits, top_k=0, top_p=0.8)).tolist() == [True, True, False, False, False]
    assert np.isfinite(filter_logits(logits, top_k=0, top_p=0.5)).sum() == 1
    assert np.isfinite(filter_logits(logits, top_k=0, top_p=1.0)).all()
    assert np.isfinite(filter_logits(logits, top_k=3, top_p=0.95)).sum() == 3


def test_compiled_decoder_matches_full_forward(model: DrumModel) -> None:
    """The compiled ring-buffer decoder used for sampling reproduces the teacher-forced torch trunk and heads,
    with two rows as in guided sampling."""
    net = model.net
    steps = net.cfg.context_steps
    x = torch.randn(1, steps, net.cfg.d_model, generator=torch.Generator().manual_seed(0))
    weights = model._decoder_weights()
    state = decoder.new_state(weights, 2, net.cfg.n_heads, net.cfg.context_steps)
    rows = np.stack(
        [decoder.trunk_step(weights, state, np.repeat(x[0, t : t + 1].numpy(), 2, 0)) for t in range(steps)]
    )
    assert np.array_equal(rows[:, 0], rows[:, 1])
    states = rows[:, 0]
    with torch.inference_mode():
        full = net.hidden_states(x)[0]
        full_logits = net.pattern_head(full).numpy()
        vel, off = net.detail_logits(full[5], torch.tensor(37))
    assert np.allclose(full_logits, states @ weights.pattern_head.T + weights.pattern_head_bias, atol=1e-3)
    inner = states[5] @ weights.detail_in.T + weights.detail_pattern[37]
    inner = 0.5 * inner * (1.0 + special.erf(inner / np.sqrt(2.0)))
    detail = (inner @ weights.detail_out.T + weights.detail_out_bias).reshape(9, -1)
    assert np.allclose(vel.numpy(), detail[:, :8], atol=1e-3) and np.allclose(off.numpy(), detail[:, 8:], atol=1e-3)


TIE_MARGIN = 1e-3  # a draw whose runner-up is this close (in logit + noise) may go either way between machines


def _check_against_torch(
    model: DrumModel,
    grid: Grid,
    *,
    seed: int,
    guidance: float,
    temperature: float,
    top_k: int,
    top_p: float,
    bias: np.ndarray | None,
) -> int:
    """Check every draw of ``grid`` (2 bars, funk, fill in bar 2, 100 BPM, as ``_generate``) with the torch network:
    at each step the network is re-run teacher-forced over the grid's own prefix, and with the noise drawn
    as ``DrumModel.generate`` draws it (``sampling_noise``) the grid's hit pattern and each
    hit's velocity and offset bin must be the argmax, or within ``TIE_MARGIN`` of it (float rounding differs
    between the compiled decoder and torch, and between CPUs). Returns the number of draws checked."""
    from cadenza.engines.drums.data import metric_positions
    from cadenza.engines.drums.model import BOS

    net, n_steps = model.net, 32
    metric = {k: torch.from_numpy(v)[None] for k, v in metric_positions(n_steps, 16, 4).items()}
    metric["fill"] = torch.tensor([[0] * 16 + [1] * 16])
    styles = [model.style_vector({"funk": 1.0})[None]] + ([torch.zeros(1, len(model.styles))] if guidance != 1 else [])
    pattern_noise, detail_noise, inside = sampling_noise(seed, n_steps)
    patterns = (grid.hits.astype(np.int64) << np.arange(9)).sum(1)
    prev_patterns = torch.tensor([[BOS, *patterns[:-1].tolist()]])
    prev_details = torch.zeros(1, n_steps, 18)
    prev_details[0, 1:] = torch.from_numpy(np.concatenate((grid.velocity, grid.offset), 1)[:-1])
    inv_t = np.float32(1.0 / temperature)
    checked = 0

    def guided(rows: list[torch.Tensor]) -> np.ndarray:
        rows = [r.numpy() for r in rows]
        return (rows[0] if len(rows) == 1 else rows[1] + np.float32(guidance) * (rows[0] - rows[1])) * inv_t

    def drawn(scores: np.ndarray, choice: int, what: str) -> None:
        nonlocal checked
        assert scores[choice] >= scores.max() - TIE_MARGIN, f"{what}: drew {choice}, the network says {scores.argmax()}"
        checked += 1

    with torch.inference_mode():
        for t in range(n_steps):
            hidden = []
            for style in styles:
                cond = {k: v[:, : t + 1] for k, v in metric.items()} | {
                    "style": style,
                    "tempo_bpm": torch.tensor([100.0]),
                }
                x = net.step_inputs(prev_patterns[:, : t + 1], prev_details[:, : t + 1]) + net.condition(cond)
                hidden.append(net.hidden_states(x)[0, -1])
            logits = guided([net.pattern_head(h) for h in hidden])
            if bias is not None:
                logits = logits + bias[t] * inv_t
            if top_k or top_p < 1:
                logits = filter_logits(logits, top_k, top_p)
            pattern = int(patterns[t])
            drawn(logits + pattern_noise[t], pattern, f"step {t} pattern")
            if not pattern:
                continue
            detail = guided([torch.cat(net.detail_logits(h, torch.tensor(pattern)), -1) for h in hidden])
            detail = detail + detail_noise[t].reshape(9, 17)
            for c in np.flatnonzero(grid.hits[t]):
                # the bins whose value (drawn uniformly inside them with the step's uniforms) is the grid's
                velocities = np.clip((np.arange(8) + inside[t, 0, c]) / 8, 1 / 127, 1).astype(np.float32)
                offsets = np.clip((np.arange(9) + inside[t, 1, c]) / 9 - 0.5, -0.5, 0.5 - 1e-6).astype(np.float32)
                (velocity_bin,) = np.flatnonzero(velocities == grid.velocity[t, c])
                (offset_bin,) = np.flatnonzero(offsets == grid.offset[t, c])
                drawn(detail[c, :8], int(velocity_bin), f"step {t} instrument {c} velocity")
                drawn(detail[c, 8:], int(offset_bin), f"step {t} instrument {c} offset")
    return checked


@pytest.mark.parametrize(
    "sampling",
    [
        {"seed": 3, "guidance": 1.5, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "bias": False},
        {"seed": 4, "guidance": 1.0, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "bias": False},
        {"seed": 5, "guidance": 2.0, "temperature": 0.9, "top_k": 20, "top_p": 0.9, "bias": True},
    ],
)
def test_compiled_sampler_draws_what_the_torch_network_says(model: DrumModel, sampling: dict) -> None:
    """Every draw of a 2-bar groove (hit pattern, each hit's velocity and offset bin) is the one the torch
    network makes with the same noise: the compiled decoder computes the network's distribution (guidance,
    temperature, top-k/top-p and a pattern bias included) and samples it as documented."""
    bias = np.random.default_rng(0).normal(0.0, 2.0, (32, 512)).astype(np.float32) if sampling["bias"] else None
    options = {k: sampling[k] for k in ("seed", "temperature", "top_k", "top_p")}
    grid = _generate(model, **options, style_guidance=sampling["guidance"], pattern_bias=bias)
    assert grid.hits.sum() >= 10
    checked = _check_against_torch(model, grid, **options, guidance=sampling["guidance"], bias=bias)
    assert checked == 32 + 2 * grid.hits.sum()


def _torch_windowed_states(net, x: torch.Tensor, window: int) -> torch.Tensor:
    """Reference for generation past the context: the torch blocks one step at a time, each layer attending to
    the keys and values of its last ``window`` steps (a sliding window). x: (steps, d) → ln_f states (steps, d)."""
    d, heads = net.cfg.d_model, net.cfg.n_heads
    head_dim = d // heads
    caches: list[tuple[list, list]] = [([], []) for _ in net.blocks]
    out = []
    for step in x:
        h = step[None]
        for block, (keys, values) in zip(net.blocks, caches, strict=True):
            q, k, v = block.qkv(block.ln1(h)).split(d, dim=-1)
            keys.append(k.view(heads, head_dim))
            values.append(v.view(heads, head_dim))
            del keys[:-window], values[:-window]
            scores = torch.einsum("he,nhe->hn", q.view(heads, head_dim), torch.stack(keys)) / head_dim**0.5
            attn = torch.einsum("hn,nhe->he", scores.softmax(-1), torch.stack(values)).reshape(1, d)
            h = h + block.proj(attn)
            h = h + block.ff(block.ln2(h))
        out.append(net.ln_f(h)[0])
    return torch.stack(out)


def test_compiled_decoder_slides_its_window_past_the_context(model: DrumModel) -> None:
    """Past ``context_steps`` (64) the ring buffer overwrites the oldest keys and values: 2.5 windows of steps
    give the logits of a torch sliding-window reference."""
    net = model.net
    steps, window = 160, net.cfg.context_steps
    x = torch.randn(steps, net.cfg.d_model, generator=torch.Generator().manual_seed(1))
    weights = model._decoder_weights()
    state = decoder.new_state(weights, 1, net.cfg.n_heads, window)
    states = np.stack([decoder.trunk_step(weights, state, x[t : t + 1].numpy())[0] for t in range(steps)])
    with torch.inference_mode():
        expected = net.pattern_head(_torch_windowed_states(net, x, window)).numpy()
    got = states @ weights.pattern_head.T + weights.pattern_head_bias
    assert np.allclose(got, expected, atol=1e-3)
    # and the window matters: the full-context torch pass differs after step 64
    with torch.inference_mode():
        full = net.pattern_head(net.hidden_states(x[None])[0]).numpy()
    assert np.allclose(got[:window], full[:window], atol=1e-3) and not np.allclose(
        got[window:], full[window:], atol=1e-2
    )


def test_decoder_gelu_is_exact_to_float32_rounding() -> None:
    """GELU's erf (Eigen's rational approximation) against SciPy's erf in float64, over its whole range."""
    x = np.linspace(-12.0, 12.0, 20_001, dtype=np.float32)[None, :].copy()
    expected = 0.5 * x.astype(np.float64) * (1.0 + special.erf(x.astype(np.float64) / np.sqrt(2.0)))
    decoder._gelu(x)
    assert np.abs(x - expected).max() < 4e-6 and np.abs(x - expected).max() / 12.0 < 4e-7


def test_style_guidance(model: DrumModel) -> None:
    """Guidance 1 is plain conditional sampling; stronger guidance changes the sample, deterministically."""
    plain = _generate(model, style_guidance=1.0)
    guided = _generate(model, style_guidance=3.0)
    again = _generate(model, style_guidance=3.0)
    assert np.array_equal(guided.hits, again.hits) and np.array_equal(guided.velocity, again.velocity)
    assert not (np.array_equal(plain.hits, guided.hits) and np.array_equal(plain.velocity, guided.velocity))
