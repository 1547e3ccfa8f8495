"""The committed groove-transformer checkpoint: loading, generation contract, determinism, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cadenza.engines.drums.model import (
    DEFAULT_CHECKPOINT,
    GMD_STYLES,
    DrumModel,
    Grid,
    _NumpyStepper,
    filter_logits,
    load_model,
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


def test_numpy_stepper_matches_full_forward(model: DrumModel) -> None:
    """The NumPy ring-buffer stepper used for sampling reproduces the teacher-forced torch trunk and heads."""
    net = model.net
    x = torch.randn(1, net.cfg.context_steps, net.cfg.d_model, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full = net.hidden_states(x)
        full_logits = net.pattern_head(full)[0].numpy()
        vel, off = net.detail_logits(full[0, 5], torch.tensor(37))
    stepper = _NumpyStepper(net)
    stepper.reset(2)  # two identical rows, as in guided sampling
    states = np.stack([stepper.step(np.repeat(x[0, t : t + 1].numpy(), 2, 0)) for t in range(x.shape[1])], 1)
    assert np.array_equal(states[0], states[1])
    hidden = states[0]
    assert np.allclose(full_logits, stepper.pattern_logits(hidden), atol=1e-3)
    np_vel, np_off = stepper.detail_logits(hidden[5:6], 37)
    np_vel, np_off = np_vel[0], np_off[0]
    assert np.allclose(vel.numpy(), np_vel, atol=1e-3) and np.allclose(off.numpy(), np_off, atol=1e-3)


def test_style_guidance(model: DrumModel) -> None:
    """Guidance 1 is plain conditional sampling; stronger guidance changes the sample, deterministically."""
    plain = _generate(model, style_guidance=1.0)
    guided = _generate(model, style_guidance=3.0)
    again = _generate(model, style_guidance=3.0)
    assert np.array_equal(guided.hits, again.hits) and np.array_equal(guided.velocity, again.velocity)
    assert not (np.array_equal(plain.hits, guided.hits) and np.array_equal(plain.velocity, guided.velocity))
