"""Groove transformer: an autoregressive causal transformer over 16th-note steps of a drum grid.

Factorisation per step t (all conditioned on the previous steps and on the step's conditioning —
style mixture, beat/fill, tempo, metric position):

1. a categorical over the joint 9-bit hit pattern (512 symbols); ``temperature``, ``top_k`` and
   ``top_p`` (nucleus sampling, Holtzman et al., ICLR 2020) apply here;
2. for each instrument hit in the sampled pattern, a categorical over 8 velocity bins and one over
   9 micro-timing offset bins, conditioned on the step's hidden state and the sampled pattern.
   Continuous values are drawn uniformly (seeded) inside the sampled bin.

So the per-step negative log-likelihood (nats) is comparable with the n-gram baseline in
``baseline.py`` on the same discrete representation. Representation after GrooVAE (Gillick et al.,
ICML 2019); trained on the Groove MIDI Dataset v1.0.0 (CC BY 4.0).

The model has no positional embedding of absolute step index: position enters only through metric
features (position in beat, beat in bar, beats per bar, bar start), so any meter with up to
16 beats of up to 8 steps is expressed by the conditioning, and generation longer than the training
context slides a window over a key/value cache.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cadenza.music.drum_map import N_CLASSES

from . import decoder
from .data import (
    GMD_STYLES,
    MAX_BEATS_PER_BAR,
    MAX_STEPS_PER_BEAT,
    N_OFFSET_BINS,
    N_PATTERNS,
    N_VELOCITY_BINS,
    Grid,
    metric_positions,
)

__all__ = ["DEFAULT_CHECKPOINT", "GMD_STYLES", "DrumModel", "Grid", "GrooveTransformer", "ModelConfig", "load_model"]

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "groove_transformer.pt"
CHECKPOINT_FORMAT = "cadenza-drums-groove-transformer-1"
BOS = N_PATTERNS  # pattern index of the "no previous step" token
TEMPO_CENTER_BPM = 120.0
TEMPO_SCALE_BPM = 40.0


@dataclass
class ModelConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    dropout: float = 0.1
    context_steps: int = 64
    n_styles: int = len(GMD_STYLES)


def tempo_feature(tempo_bpm: torch.Tensor) -> torch.Tensor:
    """Tempo in BPM → the model's normalised tempo input, shape (..., 1)."""
    return ((tempo_bpm - TEMPO_CENTER_BPM) / TEMPO_SCALE_BPM).clamp(-3.0, 3.0).unsqueeze(-1)


class _Block(nn.Module):
    """Pre-norm transformer block with causal self-attention (step-by-step sampling: ``decoder.py``)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)
        self.attn_dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        head_dim = d_model // self.n_heads
        q, k, v = self.qkv(self.ln1(x)).split(d_model, dim=-1)
        q, k, v = (t.view(batch, length, self.n_heads, head_dim).transpose(1, 2) for t in (q, k, v))
        attn = F.scaled_dot_product_attention(
            q, k, v, is_causal=length > 1, dropout_p=self.attn_dropout if self.training else 0.0
        )
        attn = attn.transpose(1, 2).reshape(batch, length, d_model)
        x = x + self.drop(self.proj(attn))
        return x + self.drop(self.ff(self.ln2(x)))


class GrooveTransformer(nn.Module):
    """The network. Inputs are (batch, steps) tensors; see :meth:`forward`."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.prev_pattern = nn.Embedding(N_PATTERNS + 1, d)
        self.prev_details = nn.Linear(2 * N_CLASSES, d)
        self.style = nn.Linear(cfg.n_styles, d, bias=False)
        self.fill = nn.Embedding(2, d)
        self.tempo = nn.Linear(1, d)
        self.pos_in_beat = nn.Embedding(MAX_STEPS_PER_BEAT, d)
        self.beat_in_bar = nn.Embedding(MAX_BEATS_PER_BAR, d)
        self.beats_per_bar = nn.Embedding(MAX_BEATS_PER_BAR + 1, d)
        self.bar_start = nn.Embedding(2, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.pattern_head = nn.Linear(d, N_PATTERNS)
        self.cur_pattern = nn.Embedding(N_PATTERNS, d)
        self.detail_head = nn.Sequential(
            nn.Linear(d, d), nn.GELU(), nn.Linear(d, N_CLASSES * (N_VELOCITY_BINS + N_OFFSET_BINS))
        )

    def condition(self, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """Conditioning embedding (batch, steps, d_model).

        ``cond``: ``style`` (batch, n_styles) float weights summing to 1; ``fill`` (batch, steps) int;
        ``tempo_bpm`` (batch,) float; ``pos_in_beat``, ``beat_in_bar``, ``beats_per_bar``,
        ``bar_start`` (batch, steps) int.
        """
        style = self.style(cond["style"]).unsqueeze(1)
        tempo = self.tempo(tempo_feature(cond["tempo_bpm"])).unsqueeze(1)
        return (
            style
            + tempo
            + self.fill(cond["fill"])
            + self.pos_in_beat(cond["pos_in_beat"])
            + self.beat_in_bar(cond["beat_in_bar"])
            + self.beats_per_bar(cond["beats_per_bar"])
            + self.bar_start(cond["bar_start"])
        )

    def step_inputs(self, prev_pattern: torch.Tensor, prev_details: torch.Tensor) -> torch.Tensor:
        """Embedding of the previous step: pattern (batch, steps) int, details (batch, steps, 18)."""
        return self.prev_pattern(prev_pattern) + self.prev_details(prev_details)

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """Causal transformer over input embeddings (batch, steps, d_model) → final hidden states, same shape."""
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def detail_logits(self, hidden: torch.Tensor, pattern: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocity logits (..., 9, 8) and offset logits (..., 9, 9) given hidden state and pattern."""
        out = self.detail_head(hidden + self.cur_pattern(pattern))
        out = out.view(*out.shape[:-1], N_CLASSES, N_VELOCITY_BINS + N_OFFSET_BINS)
        return out[..., :N_VELOCITY_BINS], out[..., N_VELOCITY_BINS:]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Teacher-forced pass. Returns per-step NLL components (batch, steps) in nats.

        ``batch``: the :meth:`condition` keys plus ``pattern`` (B, T) int target patterns,
        ``vel_bin`` / ``off_bin`` (B, T, 9) int target bins, ``prev_details`` (B, T, 18) float
        (previous step's velocities and offsets), ``mask`` (B, T) bool valid steps.
        """
        pattern = batch["pattern"]
        prev = torch.cat((torch.full_like(pattern[:, :1], BOS), pattern[:, :-1]), dim=1)
        x = self.step_inputs(prev, batch["prev_details"]) + self.condition(batch)
        hidden = self.hidden_states(x)
        nll_pattern = F.cross_entropy(self.pattern_head(hidden).transpose(1, 2), pattern, reduction="none")
        vel_logits, off_logits = self.detail_logits(hidden, pattern)
        hits = ((pattern.unsqueeze(-1) >> torch.arange(N_CLASSES, device=pattern.device)) & 1).float()
        nll_vel = F.cross_entropy(vel_logits.permute(0, 3, 1, 2), batch["vel_bin"], reduction="none")
        nll_off = F.cross_entropy(off_logits.permute(0, 3, 1, 2), batch["off_bin"], reduction="none")
        return {
            "pattern": nll_pattern,
            "velocity": (nll_vel * hits).sum(-1),
            "offset": (nll_off * hits).sum(-1),
        }


def filter_logits(logits: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """Set logits (1-D) outside the top-k and outside the smallest set with probability ≥ top_p to -inf."""
    logits = np.array(logits, dtype=np.float64)
    if 0 < top_k < logits.size:
        kth = np.partition(logits, -top_k)[-top_k]
        logits[logits < kth] = -np.inf
    if top_p < 1.0:
        order = np.argsort(-logits, kind="stable")
        probs = _softmax(logits[order])
        drop = np.cumsum(probs) - probs >= top_p  # the most likely symbol is always kept
        logits[order[drop]] = -np.inf
    return logits


def sampling_noise(seed: int, n_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All the randomness of one groove, drawn up front so the compiled sampler needs no generator:
    Gumbel noise for the hit pattern (n_steps, 512) and for each instrument's velocity and offset bins
    (n_steps, 9 × 17), float32 (Gumbel-max sampling: argmax(logits/T + G) is a draw from softmax(logits/T);
    Gumbel 1954, Maddison et al. 2014), then uniforms placing each value inside its bin (n_steps, 2, 9),
    float64. C-contiguous (the compiled signature). Deterministic for ``seed`` (torch's CPU generator)."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    noise = torch.rand((n_steps, N_PATTERNS + N_CLASSES * (N_VELOCITY_BINS + N_OFFSET_BINS)), generator=generator)
    gumbel = -np.log(-np.log(noise.double().clamp(1e-12, 1 - 1e-12).numpy())).astype(np.float32)
    inside = torch.rand((n_steps, 2, N_CLASSES), generator=generator, dtype=torch.float64).numpy()
    return np.ascontiguousarray(gumbel[:, :N_PATTERNS]), np.ascontiguousarray(gumbel[:, N_PATTERNS:]), inside


class DrumModel:
    """A loaded groove transformer ready to generate grids. Not thread-safe; CPU-deterministic."""

    def __init__(self, net: GrooveTransformer, styles: Sequence[str], info: dict[str, Any], device: str) -> None:
        self.net = net.eval()
        self.styles = tuple(styles)
        self.info = info
        self.version = str(info.get("version", "groove-transformer-1.0"))
        self.device = torch.device(device)
        self._weights: decoder.DecoderWeights | None = None

    def style_vector(self, style_weights: dict[str, float]) -> torch.Tensor:
        """Normalised style weights as a (n_styles,) tensor. Raises ValueError for bad input."""
        if not style_weights:
            raise ValueError("style_weights must name at least one style")
        vector = torch.zeros(len(self.styles))
        for name, weight in style_weights.items():
            if name not in self.styles:
                raise ValueError(f"unknown GMD style {name!r}; expected one of {', '.join(self.styles)}")
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"style weight for {name!r} must be finite and ≥ 0, got {weight}")
            vector[self.styles.index(name)] += float(weight)
        total = float(vector.sum())
        if total <= 0:
            raise ValueError("style weights must not all be 0")
        return vector / total

    @torch.inference_mode()
    def generate(
        self,
        *,
        n_bars: int,
        steps_per_bar: int,
        steps_per_beat: int,
        style_weights: dict[str, float],
        fill_bars: Sequence[bool],
        tempo_bpm: float,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        progress: Callable[[float], None] | None = None,
        style_guidance: float | None = None,
        pattern_bias: np.ndarray | None = None,
    ) -> Grid:
        """Sample a drum grid of ``n_bars`` × ``steps_per_bar`` 16th steps.

        ``style_weights``: GMD style → weight (normalised inside; a mixture conditions on the
        weighted style embedding). ``fill_bars``: one bool per bar, True = condition on "fill".
        ``tempo_bpm`` in (20, 400). ``temperature`` in [0.1, 2.0] scales all categoricals; ``top_k`` in
        0..100 (0 = off) and ``top_p`` in (0, 1] filter the 512-way hit-pattern categorical.
        Deterministic for a ``seed`` on CPU. ``progress(percent)`` (0–100) is called after every bar.
        ``style_guidance`` in [1, 5] (default: the checkpoint's ``info["style_guidance"]``, else 1):
        classifier-free guidance (Ho & Salimans 2022) of all logits, ``u + g·(c − u)`` with c the
        style-conditioned and u the style-free logits; 1 = plain conditional sampling.
        ``pattern_bias``: optional (n_bars × steps_per_bar, 512) float log-odds added to each step's guided
        hit-pattern logits before temperature (steers density and placement, e.g. towards a reference groove:
        see ``reference.py``).
        Returns a Grid with (n_bars × steps_per_bar, 9) arrays. Raises ValueError for bad arguments.
        """
        if not 1 <= n_bars <= 1024:
            raise ValueError(f"n_bars must be 1..1024, got {n_bars}")
        if len(fill_bars) != n_bars:
            raise ValueError(f"fill_bars must have one entry per bar ({n_bars}), got {len(fill_bars)}")
        if not 0.1 <= temperature <= 2.0:
            raise ValueError(f"temperature must be in [0.1, 2.0], got {temperature}")
        if not 0 <= top_k <= 100:
            raise ValueError(f"top_k must be in 0..100, got {top_k}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if not 20.0 < tempo_bpm < 400.0:
            raise ValueError(f"tempo_bpm must be in (20, 400), got {tempo_bpm}")
        guidance = float(self.info.get("style_guidance", 1.0) if style_guidance is None else style_guidance)
        if not 1.0 <= guidance <= 5.0:
            raise ValueError(f"style_guidance must be in [1, 5], got {guidance}")
        n_steps = n_bars * steps_per_bar
        if pattern_bias is not None and np.shape(pattern_bias) != (n_steps, N_PATTERNS):
            raise ValueError(f"pattern_bias must have shape ({n_steps}, {N_PATTERNS}), got {np.shape(pattern_bias)}")
        metric = metric_positions(n_steps, steps_per_bar, steps_per_beat)
        style = self.style_vector(style_weights)
        net = self.net
        dev = self.device
        fill = np.repeat(np.asarray(fill_bars, dtype=np.int64), steps_per_bar)
        cond = {k: torch.from_numpy(v).to(dev).unsqueeze(0) for k, v in metric.items()}
        cond["fill"] = torch.from_numpy(fill).to(dev).unsqueeze(0)
        cond["style"] = style.to(dev).unsqueeze(0)
        cond["tempo_bpm"] = torch.tensor([float(tempo_bpm)], device=dev)
        rows = [net.condition(cond)[0]]
        if guidance != 1.0:  # second row: the same conditioning without style
            rows.append(net.condition({**cond, "style": torch.zeros_like(cond["style"])})[0])
        cond_emb = np.ascontiguousarray(torch.stack(rows, 1).float().cpu().numpy())  # (n_steps, rows, d)

        pattern_noise, detail_noise, inside = sampling_noise(seed, n_steps)
        patterns = np.zeros(n_steps, dtype=np.int64)
        vel_out = np.zeros((n_steps, N_CLASSES), dtype=np.float32)
        off_out = np.zeros((n_steps, N_CLASSES), dtype=np.float32)
        bits = np.arange(N_CLASSES)
        weights = self._decoder_weights()
        state = decoder.new_state(weights, len(rows), net.cfg.n_heads, net.cfg.context_steps)
        bias = np.zeros((0, N_PATTERNS), dtype=np.float32)
        if pattern_bias is not None:
            bias = np.ascontiguousarray(pattern_bias, dtype=np.float32)
        for start in range(0, n_steps, steps_per_bar):
            stop = start + steps_per_bar
            decoder.sample(
                weights,
                state,
                cond_emb,
                pattern_noise,
                detail_noise,
                inside,
                bias,
                np.float32(guidance),
                np.float32(1.0 / temperature),
                int(top_k),
                float(top_p),
                start,
                stop,
                patterns,
                vel_out,
                off_out,
            )
            if progress is not None:
                progress(100.0 * stop / n_steps)
        hits = ((patterns[:, None] >> bits) & 1).astype(bool)
        return Grid(hits=hits, velocity=vel_out, offset=off_out)

    def prepare(self) -> None:
        """Pack the weights for the compiled sampler and compile it, or load it from Numba's on-disk cache
        (``decoder.warm_up``: ~10 s the first time on a machine, then ~0.4 s per process). ``load_model``
        calls it, so the cost falls on loading, not on the first groove."""
        weights = self._decoder_weights()
        decoder.warm_up(weights, self.net.cfg.n_heads, self.net.cfg.context_steps)

    def _decoder_weights(self) -> decoder.DecoderWeights:
        if self._weights is None:
            state_dict = {k: v.detach().double().cpu().numpy() for k, v in self.net.state_dict().items()}
            self._weights = decoder.pack_weights(state_dict, self.net.cfg.n_layers)
        return self._weights


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def save_checkpoint(
    path: Path, net: GrooveTransformer, styles: Sequence[str], info: dict[str, Any], style_tempo_bpm: dict
) -> None:
    """Write a checkpoint (weights stored as float16 to keep it small; loaded back as float32)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(net.cfg),
        "styles": list(styles),
        "style_tempo_bpm": dict(style_tempo_bpm),
        "info": info,
        "state_dict": state,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def update_checkpoint_info(path: Path, updates: dict[str, Any]) -> None:
    """Merge ``updates`` into a checkpoint's ``info`` (e.g. evaluation metrics), weights untouched."""
    payload = load_checkpoint(path)
    payload["info"] = {**payload["info"], **updates}
    tmp = Path(path).with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The raw checkpoint dict. Raises FileNotFoundError / ValueError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"drums checkpoint not found: {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a Cadenza groove-transformer checkpoint")
    return payload


def build_net(payload: dict[str, Any]) -> GrooveTransformer:
    net = GrooveTransformer(ModelConfig(**payload["config"]))
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    return net


def load_model(path: Path | None = None, device: str = "cpu") -> DrumModel:
    """Load a checkpoint (default: the committed ``DEFAULT_CHECKPOINT``) as a DrumModel.

    Raises FileNotFoundError if the file is missing, ValueError if it is not a drums checkpoint.
    """
    payload = load_checkpoint(path or DEFAULT_CHECKPOINT)
    net = build_net(payload).to(device)
    info = dict(payload["info"])
    info["style_tempo_bpm"] = payload.get("style_tempo_bpm", {})
    info["parameters"] = sum(p.numel() for p in net.parameters())
    model = DrumModel(net, payload["styles"], info, device)
    model.prepare()
    return model
