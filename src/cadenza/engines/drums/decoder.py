"""Compiled step-by-step sampler of the groove transformer (Numba): a run of steps in one native call.

Sampling a groove evaluates the network one 16th step at a time, each step conditioned on the hits just
drawn. Arranged as NumPy array operations a step costs ~180 small calls, whose overhead, not arithmetic,
dominated: about 7× one teacher-forced forward pass over the same 64 steps. Here the step loop, the
transformer blocks, both heads and the Gumbel-max draws run inside one ``numba.njit`` function per call
(:func:`sample`), compiled once per machine and cached on disk (``cache=True``; Numba needs the cache folder
writable even to load from it, see ``NUMBA_CACHE_DIR``, and invalidates it when this file changes, not when
the constants it imports from ``data.py`` do); the model calls it once per bar, between progress reports.

Arithmetic is the network's (:class:`~cadenza.engines.drums.model.GrooveTransformer` in eval mode) in
float32:

* pre-norm blocks, every LayerNorm's gain and bias folded into the linear layer that reads it
  (``W·(g⊙n + b) + c = (W·diag g)·n + (W·b + c)``);
* a ring-buffer key/value cache of ``context_steps`` entries: with one query and no absolute positions,
  attention does not depend on the order of the cached keys, so the ring is a sliding window;
* the current pattern's embedding pre-projected through the detail head's first layer;
* GELU exact up to float32 rounding: erf by Eigen's float32 rational approximation
  (``generic_fast_erf_float``, also XLA's and TVM's): x·P(x²)/Q(x²) on [-4, 4], ±1 outside.

Both rows of classifier-free guidance (style-conditioned and style-free; Ho & Salimans 2022) go through
each weight matrix together, so the weights (~3.5 MB) are read once per step. Each output of a linear
layer is a dot product that LLVM vectorises by reassociating its sum, so the last bits of a logit depend
on the CPU's SIMD width, as with any BLAS; on one machine the same request and seed give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numba
import numpy as np

from .data import N_CLASSES, N_OFFSET_BINS, N_PATTERNS, N_VELOCITY_BINS

__all__ = ["DecoderState", "DecoderWeights", "new_state", "pack_weights", "sample", "trunk_step", "warm_up"]

_DETAIL = N_VELOCITY_BINS + N_OFFSET_BINS  # logits per instrument: 8 velocity bins then 9 offset bins
_F = np.float32
_EPS = _F(1e-5)
_HALF = _F(0.5)
_ONE = _F(1.0)
_INV_SQRT2 = _F(1.0 / math.sqrt(2.0))
_ERF_CLAMP = _F(4.0)
# Eigen's generic_fast_erf_float: erf(x) ≈ x·P(x²)/Q(x²) on [-4, 4]
_A1, _A3, _A5 = _F(-1.60960333262415e-02), _F(-2.95459980854025e-03), _F(-7.34990630326855e-04)
_A7, _A9, _A11 = _F(-5.69250639462346e-05), _F(-2.10102402082508e-06), _F(2.77068142495902e-08)
_A13 = _F(-2.72614225801306e-10)
_B0, _B2, _B4 = _F(-1.42647390514189e-02), _F(-7.37332916720468e-03), _F(-1.68282697438203e-03)
_B6, _B8 = _F(-2.13374055278905e-04), _F(-1.45660718464996e-05)


class DecoderWeights(NamedTuple):
    """The network's float32 arrays, weights (out, in) as in torch, LayerNorms folded into their readers."""

    qkv: np.ndarray  # (layers, 3d, d), ln1 folded
    qkv_bias: np.ndarray  # (layers, 3d)
    proj: np.ndarray  # (layers, d, d)
    proj_bias: np.ndarray  # (layers, d)
    ff_in: np.ndarray  # (layers, d_ff, d), ln2 folded
    ff_in_bias: np.ndarray  # (layers, d_ff)
    ff_out: np.ndarray  # (layers, d, d_ff)
    ff_out_bias: np.ndarray  # (layers, d)
    prev_pattern: np.ndarray  # (513, d) embedding of the previous step's pattern (512 = none)
    prev_details: np.ndarray  # (d, 18) the previous step's 9 velocities and 9 offsets
    prev_details_bias: np.ndarray  # (d,)
    pattern_head: np.ndarray  # (512, d), ln_f folded
    pattern_head_bias: np.ndarray  # (512,)
    detail_in: np.ndarray  # (d, d), ln_f gain folded
    detail_pattern: np.ndarray  # (512, d) the current pattern through the detail head's first layer (+ biases)
    detail_out: np.ndarray  # (9 × 17, d)
    detail_out_bias: np.ndarray  # (9 × 17,)


class DecoderState(NamedTuple):
    """A sequence in progress: ring-buffer keys (layers, rows, heads, head_dim, context) and values
    (layers, rows, heads, context, head_dim), float32; ``counters`` int64 [steps done, previous pattern];
    ``prev_details`` (18,) float32, the previous step's velocities and offsets."""

    keys: np.ndarray
    values: np.ndarray
    counters: np.ndarray
    prev_details: np.ndarray


def pack_weights(state_dict: dict[str, np.ndarray], n_layers: int) -> DecoderWeights:
    """The decoder's arrays from a GrooveTransformer ``state_dict`` given as float64 NumPy arrays."""
    sd = state_dict

    def folded(prefix: str, norm: str) -> tuple[np.ndarray, np.ndarray]:
        w, b = sd[f"{prefix}.weight"], sd[f"{prefix}.bias"]
        gain, shift = sd[f"{norm}.weight"], sd[f"{norm}.bias"]
        return w * gain, b + w @ shift

    def plain(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        return sd[f"{prefix}.weight"], sd[f"{prefix}.bias"]

    layers = [
        (
            *folded(f"blocks.{i}.qkv", f"blocks.{i}.ln1"),
            *plain(f"blocks.{i}.proj"),
            *folded(f"blocks.{i}.ff.0", f"blocks.{i}.ln2"),
            *plain(f"blocks.{i}.ff.2"),
        )
        for i in range(n_layers)
    ]
    stacked = [np.stack([layer[j] for layer in layers]) for j in range(8)]
    w1, b1 = sd["detail_head.0.weight"], sd["detail_head.0.bias"]
    arrays = (
        *stacked,
        sd["prev_pattern.weight"],
        *plain("prev_details"),
        *folded("pattern_head", "ln_f"),
        w1 * sd["ln_f.weight"],
        (sd["cur_pattern.weight"] + sd["ln_f.bias"]) @ w1.T + b1,
        *plain("detail_head.2"),
    )
    return DecoderWeights(*(np.ascontiguousarray(a, dtype=np.float32) for a in arrays))


def new_state(weights: DecoderWeights, rows: int, n_heads: int, context: int) -> DecoderState:
    """An empty sequence of ``rows`` parallel rows (2 for guided sampling) with a ``context``-step window."""
    layers, d = weights.proj.shape[0], weights.proj.shape[1]
    head_dim = d // n_heads
    return DecoderState(
        keys=np.zeros((layers, rows, n_heads, head_dim, context), dtype=np.float32),
        values=np.zeros((layers, rows, n_heads, context, head_dim), dtype=np.float32),
        counters=np.array([0, N_PATTERNS], dtype=np.int64),
        prev_details=np.zeros(2 * N_CLASSES, dtype=np.float32),
    )


def _compiled(**options: Any) -> Callable:
    """``numba.njit`` with Numba's on-disk cache, or without it where no cache folder is writable (Numba then
    raises at decoration): such a process compiles the sampler for itself. ``error_model="numpy"``: a division
    by zero gives inf instead of a Python exception, which lets LLVM vectorise the loops that divide."""
    options = {"nogil": True, "error_model": "numpy", **options}

    def decorate(fn: Callable) -> Callable:
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError:  # "cannot cache function …: no locator available"
            return numba.njit(cache=False, **options)(fn)

    return decorate


_jit = _compiled()


@_compiled(fastmath={"reassoc", "contract"})
def _affine(x, w, bias, out):  # pragma: no cover - compiled
    """out[r] = w @ x[r] + bias for each row r; x (rows, in), w (out, in), out (rows, out). Each output is a
    dot product that LLVM vectorises by reassociating its sum (so the last bits depend on the SIMD width)."""
    rows, n_in = x.shape
    n_out = w.shape[0]
    if rows == 2:
        for j in range(n_out):
            a = _F(0.0)
            b = _F(0.0)
            for k in range(n_in):
                a += w[j, k] * x[0, k]
                b += w[j, k] * x[1, k]
            out[0, j] = a + bias[j]
            out[1, j] = b + bias[j]
    else:
        for r in range(rows):
            for j in range(n_out):
                a = _F(0.0)
                for k in range(n_in):
                    a += w[j, k] * x[r, k]
                out[r, j] = a + bias[j]


@_jit
def _normalize(x, out):  # pragma: no cover - compiled
    """LayerNorm without gain and bias (folded into the next layer) over the last axis of (rows, d)."""
    rows, d = x.shape
    inv_d = _ONE / _F(d)
    for r in range(rows):
        total = _F(0.0)
        for k in range(d):
            total += x[r, k]
        mean = total * inv_d
        square = _F(0.0)
        for k in range(d):
            c = x[r, k] - mean
            square += c * c
        scale = _ONE / np.sqrt(square * inv_d + _EPS)
        for k in range(d):
            out[r, k] = (x[r, k] - mean) * scale


@_jit
def _gelu(x):  # pragma: no cover - compiled
    """In place, (rows, n) float32: exact (erf) GELU as ``nn.GELU()`` (Hendrycks & Gimpel 2016); erf after Eigen
    (see the module), within 4e-6 of the float64 GELU up to |x| = 12 (test)."""
    rows, n = x.shape
    for r in range(rows):
        for j in range(n):
            v = x[r, j]
            z = min(max(v * _INV_SQRT2, -_ERF_CLAMP), _ERF_CLAMP)
            z2 = z * z
            p = z2 * _A13 + _A11
            p = z2 * p + _A9
            p = z2 * p + _A7
            p = z2 * p + _A5
            p = z2 * p + _A3
            p = z2 * p + _A1
            q = z2 * _B8 + _B6
            q = z2 * q + _B4
            q = z2 * q + _B2
            q = z2 * q + _B0
            x[r, j] = _HALF * v * (_ONE + z * p / q)


@_jit
def _trunk(weights, keys, values, length, x, scratch_h, scratch_qkv, scratch_attn, scratch_ff, scores, states):
    """One step of the blocks for input embeddings ``x`` (rows, d), updated in place; writes the final
    normalised states (before ``ln_f``'s folded gain and bias) into ``states``."""
    layers, rows, heads, head_dim, context = keys.shape
    d = x.shape[1]
    slot = length % context
    filled = min(length + 1, context)
    scale = _ONE / np.sqrt(_F(head_dim))
    for i in range(layers):
        _normalize(x, scratch_h)
        _affine(scratch_h, weights.qkv[i], weights.qkv_bias[i], scratch_qkv)
        for r in range(rows):
            for h in range(heads):
                base = h * head_dim
                for e in range(head_dim):
                    keys[i, r, h, e, slot] = scratch_qkv[r, d + base + e]
                    values[i, r, h, slot, e] = scratch_qkv[r, 2 * d + base + e]
                for p in range(filled):
                    scores[p] = _F(0.0)
                for e in range(head_dim):
                    q = scratch_qkv[r, base + e] * scale
                    for p in range(filled):
                        scores[p] += q * keys[i, r, h, e, p]
                top = scores[0]
                for p in range(1, filled):
                    top = max(top, scores[p])
                total = _F(0.0)
                for p in range(filled):
                    scores[p] = np.exp(scores[p] - top)
                    total += scores[p]
                inv = _ONE / total
                for e in range(head_dim):
                    scratch_attn[r, base + e] = _F(0.0)
                for p in range(filled):
                    wp = scores[p] * inv
                    for e in range(head_dim):
                        scratch_attn[r, base + e] += wp * values[i, r, h, p, e]
        _affine(scratch_attn, weights.proj[i], weights.proj_bias[i], scratch_h)
        for r in range(rows):
            for k in range(d):
                x[r, k] += scratch_h[r, k]
        _normalize(x, scratch_h)
        _affine(scratch_h, weights.ff_in[i], weights.ff_in_bias[i], scratch_ff)
        _gelu(scratch_ff)
        _affine(scratch_ff, weights.ff_out[i], weights.ff_out_bias[i], scratch_h)
        for r in range(rows):
            for k in range(d):
                x[r, k] += scratch_h[r, k]
    _normalize(x, states)


@_jit
def trunk_step(weights, state, x):  # pragma: no cover - compiled
    """One step for input embeddings ``x`` (rows, d) float32 (not modified) → final states (rows, d) before
    ``ln_f``'s gain and bias (folded into the heads). Advances ``state``."""
    layers, rows, heads, head_dim, context = state.keys.shape
    d = x.shape[1]
    work = x.copy()
    states = np.empty((rows, d), dtype=np.float32)
    _trunk(
        weights,
        state.keys,
        state.values,
        state.counters[0],
        work,
        np.empty((rows, d), dtype=np.float32),
        np.empty((rows, 3 * d), dtype=np.float32),
        np.empty((rows, d), dtype=np.float32),
        np.empty((rows, weights.ff_in.shape[1]), dtype=np.float32),
        np.empty(context, dtype=np.float32),
        states,
    )
    state.counters[0] += 1
    return states


@_jit
def _guided(logits, guidance, inv_t, out):  # pragma: no cover - compiled
    """Sampling logits of (rows, n) model logits: ``u + g·(c − u)`` for 2 rows (row 0 conditioned), then 1/T."""
    n = out.shape[0]
    if logits.shape[0] == 1:
        for j in range(n):
            out[j] = logits[0, j] * inv_t
    else:
        for j in range(n):
            out[j] = (logits[1, j] + guidance * (logits[0, j] - logits[1, j])) * inv_t


@_jit
def _filtered_argmax(logits, noise, top_k, top_p):  # pragma: no cover - compiled
    """argmax(logits + noise) over the symbols kept by top-k and top-p (nucleus; Holtzman et al. 2020),
    in float64 as ``model.filter_logits`` (its sums run in another order: a symbol exactly on the top-p boundary
    may fall the other way)."""
    values = logits.astype(np.float64)
    n = values.shape[0]
    if 0 < top_k < n:
        kth = np.sort(values)[n - top_k]
        for j in range(n):
            if values[j] < kth:
                values[j] = -np.inf
    if top_p < 1.0:
        order = np.argsort(-values, kind="mergesort")
        top = values[order[0]]
        probs = np.exp(values[order] - top)
        probs /= probs.sum()
        cumulative = np.cumsum(probs)
        for j in range(n):
            if cumulative[j] - probs[j] >= top_p:  # the most likely symbol is always kept
                values[order[j]] = -np.inf
    best, best_j = -np.inf, 0
    for j in range(n):
        v = values[j] + noise[j]
        if v > best:
            best, best_j = v, j
    return best_j


@_jit
def sample(
    weights,
    state,
    cond,
    pattern_noise,
    detail_noise,
    inside,
    pattern_bias,
    guidance,
    inv_t,
    top_k,
    top_p,
    start,
    stop,
    patterns,
    velocity,
    offset,
):  # pragma: no cover - compiled
    """Sample steps ``start..stop-1`` of a groove, continuing ``state``. Called by ``DrumModel.generate``, which
    passes C-contiguous arrays of the dtypes below and shapes that agree (the compiled code checks no bounds;
    other dtypes or layouts compile another signature, ~10 s).

    ``cond`` (steps, rows, d) float32 conditioning embeddings (row 0 style-conditioned, row 1 style-free
    when guided); ``pattern_noise`` (steps, 512) and ``detail_noise`` (steps, 9 × 17) float32 Gumbel noise;
    ``inside`` (steps, 2, 9) float64 uniforms placing velocity and offset inside their bins;
    ``pattern_bias`` (steps, 512) float32 log-odds or (0, 512) for none; ``guidance`` and ``inv_t``
    (1 / temperature) float32; ``top_k`` (0 = off) and ``top_p`` (1 = off). Writes ``patterns`` (steps,)
    int64, ``velocity`` and ``offset`` (steps, 9) float32.
    """
    layers, rows, heads, head_dim, context = state.keys.shape
    d = cond.shape[2]
    n_detail = weights.detail_out.shape[0]
    x = np.empty((rows, d), dtype=np.float32)
    states = np.empty((rows, d), dtype=np.float32)
    h = np.empty((rows, d), dtype=np.float32)
    qkv = np.empty((rows, 3 * d), dtype=np.float32)
    attn = np.empty((rows, d), dtype=np.float32)
    ff = np.empty((rows, weights.ff_in.shape[1]), dtype=np.float32)
    scores = np.empty(context, dtype=np.float32)
    pattern_logits = np.empty((rows, N_PATTERNS), dtype=np.float32)
    logits = np.empty(N_PATTERNS, dtype=np.float32)
    inner = np.empty((rows, d), dtype=np.float32)
    detail_logits = np.empty((rows, n_detail), dtype=np.float32)
    detail = np.empty(n_detail, dtype=np.float32)
    details_row = np.empty((1, 2 * N_CLASSES), dtype=np.float32)
    embedded = np.empty((1, d), dtype=np.float32)
    filtering = top_k > 0 or top_p < 1.0
    biased = pattern_bias.shape[0] > 0
    for t in range(start, stop):
        previous = state.counters[1]
        details_row[0] = state.prev_details
        _affine(details_row, weights.prev_details, weights.prev_details_bias, embedded)
        for r in range(rows):
            for k in range(d):
                x[r, k] = weights.prev_pattern[previous, k] + embedded[0, k] + cond[t, r, k]
        _trunk(weights, state.keys, state.values, state.counters[0], x, h, qkv, attn, ff, scores, states)
        state.counters[0] += 1
        _affine(states, weights.pattern_head, weights.pattern_head_bias, pattern_logits)
        _guided(pattern_logits, guidance, inv_t, logits)
        if biased:
            for j in range(N_PATTERNS):
                logits[j] += pattern_bias[t, j] * inv_t
        if filtering:
            pattern = _filtered_argmax(logits, pattern_noise[t], top_k, top_p)
        else:
            pattern, best = 0, -np.inf
            for j in range(N_PATTERNS):
                v = logits[j] + pattern_noise[t, j]
                if v > best:
                    pattern, best = j, v
        patterns[t] = pattern
        if pattern:
            _affine(states, weights.detail_in, weights.detail_pattern[pattern], inner)
            _gelu(inner)
            _affine(inner, weights.detail_out, weights.detail_out_bias, detail_logits)
            _guided(detail_logits, guidance, inv_t, detail)
            for c in range(N_CLASSES):
                hit = (pattern >> c) & 1
                base = c * _DETAIL
                vbin, vbest = 0, -np.inf
                for j in range(N_VELOCITY_BINS):
                    v = detail[base + j] + detail_noise[t, base + j]
                    if v > vbest:
                        vbin, vbest = j, v
                obin, obest = 0, -np.inf
                for j in range(N_OFFSET_BINS):
                    v = detail[base + N_VELOCITY_BINS + j] + detail_noise[t, base + N_VELOCITY_BINS + j]
                    if v > obest:
                        obin, obest = j, v
                vel = min(max((vbin + inside[t, 0, c]) / N_VELOCITY_BINS, 1.0 / 127.0), 1.0)
                off = min(max((obin + inside[t, 1, c]) / N_OFFSET_BINS - 0.5, -0.5), 0.5 - 1e-6)
                velocity[t, c] = np.float32(hit * vel)
                offset[t, c] = np.float32(hit * off)
                state.prev_details[c] = velocity[t, c]
                state.prev_details[N_CLASSES + c] = offset[t, c]
        else:
            state.prev_details[:] = 0.0
        state.counters[1] = pattern


def warm_up(weights: DecoderWeights, n_heads: int, context: int) -> None:
    """Compile :func:`sample` for its argument types, or load it from Numba's on-disk cache, with a one-step
    draw (cold: ~10 s once per machine and source version; cached: ~0.4 s). All arrays are C-contiguous,
    as ``DrumModel.generate`` passes them, so the draw compiles the signature generation uses."""
    d, n_detail = weights.proj.shape[1], weights.detail_out.shape[0]
    state = new_state(weights, 2, n_heads, context)
    sample(
        weights,
        state,
        np.zeros((1, 2, d), dtype=np.float32),
        np.zeros((1, N_PATTERNS), dtype=np.float32),
        np.zeros((1, n_detail), dtype=np.float32),
        np.zeros((1, 2, N_CLASSES), dtype=np.float64),
        np.zeros((0, N_PATTERNS), dtype=np.float32),
        np.float32(1.0),
        np.float32(1.0),
        0,
        1.0,
        0,
        1,
        np.zeros(1, dtype=np.int64),
        np.zeros((1, N_CLASSES), dtype=np.float32),
        np.zeros((1, N_CLASSES), dtype=np.float32),
    )
