"""Melody transformer: a small decoder-only transformer over melody tokens (``tokens.py``).

Pre-norm blocks with causal self-attention and rotary position embeddings (RoPE; Su et al., "RoFormer",
2021): attention depends only on relative distances, so generation longer than the training context
slides a window over a key/value cache (``generate.NumpyStepper``) without leaving the distances it was
trained on. Trained on the
public-domain folk tunes of O'Neill's *Music of Ireland* (1850) and Ryan's *Mammoth Collection* (1883)
(``lab/train.py``); weights are Apache-2.0 like the code (the data is public domain).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CHECKPOINT_FORMAT = "cadenza-melody-transformer-1"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "melody_transformer.pt"


@dataclass
class ModelConfig:
    vocab_size: int
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 768
    dropout: float = 0.1
    context_tokens: int = 512


def rope_tables(length: int, head_dim: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (length, head_dim/2) for positions ``offset…offset+length-1`` (base 10,000)."""
    inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.arange(offset, offset + length, dtype=torch.float32)[:, None] * inv[None]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (batch, heads, length, head_dim) pairs of channels by the position angles."""
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2)


class Block(nn.Module):
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

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x (batch, length, d) → same shape (causal self-attention with RoPE, then the feed-forward)."""
        batch, length, d_model = x.shape
        head_dim = d_model // self.n_heads
        q, k, v = self.qkv(self.ln1(x)).split(d_model, dim=-1)
        q, k, v = (t.view(batch, length, self.n_heads, head_dim).transpose(1, 2) for t in (q, k, v))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        attn = F.scaled_dot_product_attention(
            q, k, v, is_causal=length > 1, dropout_p=self.attn_dropout if self.training else 0.0
        )
        x = x + self.drop(self.proj(attn.transpose(1, 2).reshape(batch, length, d_model)))
        return x + self.drop(self.ff(self.ln2(x)))


class MelodyTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied input/output embeddings
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        """GPT-2's initialisation (normal, std 0.02; zero biases), so the first logits are small."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (batch, length) → logits (batch, length, vocab). Sampling runs the same network step by step in
        NumPy (``generate.NumpyStepper``)."""
        cos, sin = rope_tables(ids.shape[1], self.cfg.d_model // self.cfg.n_heads)
        x = self.drop(self.embed(ids))
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(self.ln_f(x))

    def loss(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) over positions where ``mask`` (batch, length-1) is true."""
        logits = self(ids[:, :-1])
        nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        return (nll * mask).sum() / mask.sum().clamp(min=1)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def save_checkpoint(path: Path, net: MelodyTransformer, info: dict[str, Any]) -> None:
    """Weights as float16 (a few MB), config and ``info`` (data, metrics, command)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "config": asdict(net.cfg), "info": info, "state_dict": state}
    tmp = Path(path).with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path = DEFAULT_CHECKPOINT) -> tuple[MelodyTransformer, dict[str, Any]]:
    """(network in eval mode, info). Raises FileNotFoundError / ValueError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"melody checkpoint not found: {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a Cadenza melody checkpoint")
    net = MelodyTransformer(ModelConfig(**payload["config"]))
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    return net.eval(), dict(payload["info"])


def nats_to_bits(nats: float) -> float:
    return nats / math.log(2)
