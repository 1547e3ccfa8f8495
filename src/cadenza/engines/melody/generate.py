"""Constrained sampling of melodies from the melody transformer.

The model proposes; the constraints decide what it may propose (masking, never editing notes afterwards):

* **Structure**: ``Bar`` and ``TimeSig`` tokens are written by the sampler, not sampled, so the meter and the
  number of bars are exact. Onsets and durations are multiples of a 16th. Inside
  a bar a note's ``Position`` must lie at or after the end of the previous note (monophony) and its
  ``Duration`` must end inside the bar, so no bar overflows.
* **Scale**: pitches outside the mode's scale (relative to the tonic, which tokens put on C) are masked, unless
  ``chromatic`` is allowed; pitches outside the playable range (after transposition to the requested key)
  always are.
* **Cadence**: in the last bar, notes may start anywhere in its first half and only on beats after that; the
  first note on a beat in the second half, or the model choosing to end the bar, becomes the final note: the
  tonic or the fifth, lasting to the end of the bar. So the tune ends on a strong beat, resolved, with the
  last bar exactly full.
* **Sampling**: temperature, top-k, nucleus (top-p; Holtzman et al., ICLR 2020) and a repetition penalty on
  pitches of the last 8 notes (CTRL, Keskar et al. 2019) over the allowed tokens; deterministic for a seed
  (NumPy's PCG64). The network runs one token at a time in NumPy (:class:`NumpyStepper`).

A seed melody (``seed_notes``, already in tokens' key-normalised pitches) is fed to the model first and kept
verbatim; generation continues from the next beat after its last note.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import special

from cadenza.engines.melody.corpus import TICKS_PER_QUARTER, Note, bar_ticks, bars_spanned, beat_ticks
from cadenza.engines.melody.model import MelodyTransformer, rope_tables
from cadenza.engines.melody.tokens import token_meter, tokenizer

_INV_SQRT2 = np.float32(1.0 / math.sqrt(2.0))

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
CADENCE_DEGREES = (0, 7)  # tonic and fifth, in semitones above the tonic
REPETITION_WINDOW = 8


def on_grid(ticks: int) -> bool:
    """Onsets and durations the sampler writes: multiples of a 16th (3 ticks), so every result has an exact ABC
    and staff notation; the corpus's triplets and single-tick grace-note leftovers are read, not written."""
    return ticks % 3 == 0


@dataclass
class Sampling:
    """Sampling parameters (a profile fills them; request fields override)."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    chromatic: bool = False


@dataclass
class Melody:
    """A generated melody in the key-normalised space (tonic = C) plus the per-token log-probabilities."""

    notes: list[Note]
    tokens: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Vocab:
    positions: dict[int, int]  # position unit → token id
    durations: dict[int, int]  # duration in grid ticks → token id (per token meter's beat)
    pitches: dict[int, int]
    bar: int
    time_signatures: dict[tuple[int, int], int]


@lru_cache(maxsize=8)
def _vocab(denominator: int) -> tuple[_Vocab, float]:
    """Token ids by meaning for a token meter's denominator, and the position units per grid tick (1 in x/4,
    2 in x/8: MidiTok's beat is the denominator's note, 12 positions each)."""
    tok = tokenizer()
    beat = 4 * TICKS_PER_QUARTER // denominator  # grid ticks per MidiTok beat (the denominator's note)
    positions, durations, pitches, signatures = {}, {}, {}, {}
    for name, index in tok.vocab.items():
        kind, _, value = name.partition("_")
        if kind == "Position":
            positions[int(value)] = index
        elif kind == "Duration":
            beats, sub, res = (int(v) for v in value.split("."))
            ticks = beats * beat + sub * beat / res
            if ticks == int(ticks):
                durations[int(ticks)] = index
        elif kind == "Pitch":
            pitches[int(value)] = index
        elif kind == "TimeSig":
            n, d = (int(v) for v in value.split("/"))
            signatures[(n, d)] = index
    units_per_tick = 12 / beat  # position units per grid tick
    return _Vocab(positions, durations, pitches, tok["Bar_None"], signatures), units_per_tick


class NumpyStepper:
    """One token at a time through the network in float32 NumPy (eval mode), for fast sampling.

    Same function as ``MelodyTransformer`` (pre-norm blocks, exact GELU, RoPE on queries and keys): each
    LayerNorm's gain and bias are folded into the linear layer that reads it, and keys (rotated at their
    absolute positions) and values live in a ring buffer of ``context_tokens`` entries; with one query and
    relative (rotary) positions, attention does not depend on the order of the cached entries, so the ring is a
    sliding window. Returns log-probabilities over the vocabulary.
    """

    def __init__(self, net: MelodyTransformer, max_tokens: int = 16384) -> None:
        cfg = net.cfg
        sd = {k: v.detach().double().cpu().numpy() for k, v in net.state_dict().items()}
        self.heads, self.head_dim, self.d = cfg.n_heads, cfg.d_model // cfg.n_heads, cfg.d_model
        self.window = cfg.context_tokens

        def folded(weight: np.ndarray, bias: np.ndarray | None, norm: str) -> tuple[np.ndarray, np.ndarray]:
            gain, shift = sd[f"{norm}.weight"], sd[f"{norm}.bias"]
            b = (bias if bias is not None else 0.0) + weight @ shift
            return np.ascontiguousarray(weight * gain, dtype=np.float32), np.asarray(b, dtype=np.float32)

        def plain(name: str) -> tuple[np.ndarray, np.ndarray]:
            return sd[f"{name}.weight"].astype(np.float32), sd[f"{name}.bias"].astype(np.float32)

        # Queries' and keys' channels are reordered per head from interleaved pairs (RoPE's layout) to
        # [evens, odds]: scores q·k do not change under one permutation of both, and the rotation becomes two
        # contiguous half-vectors (x * cos + swap(x) * sin) instead of strided pair slicing.
        hd, half = self.head_dim, self.head_dim // 2
        within = np.concatenate([np.arange(0, hd, 2), np.arange(1, hd, 2)])
        qk_order = (np.arange(2 * self.heads)[:, None] * hd + within[None, :]).reshape(-1)
        order = np.concatenate([qk_order, np.arange(2 * self.d, 3 * self.d)])
        self.blocks = []
        for i in range(cfg.n_layers):
            p = f"blocks.{i}"
            wq, bq = folded(sd[f"{p}.qkv.weight"], sd[f"{p}.qkv.bias"], f"{p}.ln1")
            self.blocks.append(
                (
                    np.ascontiguousarray(wq[order]),
                    np.ascontiguousarray(bq[order]),
                    *plain(f"{p}.proj"),
                    *folded(sd[f"{p}.ff.0.weight"], sd[f"{p}.ff.0.bias"], f"{p}.ln2"),
                    *plain(f"{p}.ff.2"),
                )
            )
        self.embed = sd["embed.weight"].astype(np.float32)
        self.head = folded(sd["head.weight"], None, "ln_f")
        cos, sin = (t.numpy().astype(np.float32) for t in rope_tables(max_tokens, self.head_dim))
        self.cos = np.concatenate([cos, cos], axis=1)  # (positions, head_dim) in the [evens, odds] layout
        self.sin = np.concatenate([-sin, sin], axis=1)
        self.half = half
        self.scale = np.float32(1.0 / math.sqrt(self.head_dim))
        self.keys = np.zeros((cfg.n_layers, self.heads, self.window, self.head_dim), dtype=np.float32)
        self.values = np.zeros_like(self.keys)
        self.position = 0

    def reset(self) -> None:
        """Start a new sequence (the cache is overwritten as positions advance)."""
        self.position = 0

    @staticmethod
    def _normalize(x: np.ndarray) -> np.ndarray:
        centered = x - np.add.reduce(x) / x.size
        return centered / np.sqrt(np.dot(centered, centered) / x.size + np.float32(1e-5))

    def _rotate(self, x: np.ndarray, position: int) -> np.ndarray:
        """RoPE on (…, head_dim) at ``position`` in the [evens, odds] layout (``model.apply_rope``'s pairs
        (e, o) → (e·cos − o·sin, e·sin + o·cos))."""
        half = self.half
        swapped = np.concatenate((x[..., half:], x[..., :half]), axis=-1)
        return x * self.cos[position] + swapped * self.sin[position]

    def feed(self, token: int) -> np.ndarray:
        """Feed one token; returns the next token's log-probabilities (vocab,) float64."""
        position = self.position
        if position >= len(self.cos):
            raise ValueError("sequence longer than the rotary table")
        slot, filled = position % self.window, min(position + 1, self.window)
        x = self.embed[token].copy()
        heads, hd = self.heads, self.head_dim
        for i, (wq, bq, wp, bp, w1, c1, w2, c2) in enumerate(self.blocks):
            qkv = wq @ self._normalize(x) + bq
            q, k = self._rotate(qkv[: 2 * self.d].reshape(2, heads, hd), position)
            self.keys[i, :, slot] = k
            self.values[i, :, slot] = qkv[2 * self.d :].reshape(heads, hd)
            scores = np.matmul(self.keys[i, :, :filled], q[:, :, None])[:, :, 0] * self.scale  # (heads, filled)
            weights = np.exp(scores - scores.max(-1, keepdims=True))
            weights /= weights.sum(-1, keepdims=True)
            attn = np.matmul(weights[:, None, :], self.values[i, :, :filled]).reshape(self.d)
            x = x + wp @ attn + bp
            hidden = w1 @ self._normalize(x) + c1
            x = x + w2 @ (np.float32(0.5) * hidden * (np.float32(1.0) + special.erf(hidden * _INV_SQRT2))) + c2
        self.position += 1
        logits = (self.head[0] @ self._normalize(x) + self.head[1]).astype(np.float64)
        top = logits.max()
        return logits - top - math.log(np.exp(logits - top).sum())


def _choose(
    logprobs: np.ndarray,
    allowed: dict[int, int],
    sampling: Sampling,
    rng: np.random.Generator,
    penalties: dict[int, float] | None = None,
) -> tuple[int, int, float]:
    """Sample among ``allowed`` (value → token id). Returns (value, token id, the model's log-probability)."""
    values = list(allowed)
    ids = np.fromiter(allowed.values(), dtype=np.int64, count=len(values))
    scores = logprobs[ids].copy()
    if penalties:
        for i, value in enumerate(values):
            if value in penalties:
                scores[i] -= math.log(penalties[value])
    scores /= max(sampling.temperature, 1e-6)
    if 0 < sampling.top_k < len(values):
        kth = np.partition(scores, -sampling.top_k)[-sampling.top_k]
        scores[scores < kth] = -np.inf
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    if sampling.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        probs[order[(cumulative - probs[order]) >= sampling.top_p]] = 0.0
        probs /= probs.sum()
    pick = int(min(np.searchsorted(np.cumsum(probs), rng.random() * probs.sum(), side="right"), len(values) - 1))
    return values[pick], int(ids[pick]), float(logprobs[ids[pick]])


_STEPPERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def stepper_for(net: MelodyTransformer) -> NumpyStepper:
    """The (cached) NumPy stepper of ``net``: its folded weights and rotary tables are built once per network.
    Not thread-safe, like the worker process that uses it."""
    if net not in _STEPPERS:
        _STEPPERS[net] = NumpyStepper(net)
    return _STEPPERS[net]


def _feed(decoder: NumpyStepper, tokens: Sequence[int]) -> np.ndarray:
    logprobs = np.zeros(0)
    for token in tokens:
        logprobs = decoder.feed(token)
    return logprobs


def generate(
    net: MelodyTransformer,
    *,
    mode: str,
    numerator: int,
    denominator: int,
    bars: int,
    pitch_range: tuple[int, int],
    sampling: Sampling,
    seed: int,
    seed_notes: Sequence[Note] = (),
    progress: Callable[[float], None] | None = None,
    strong_pitch_classes: Callable[[int, int], Collection[int] | None] | None = None,
) -> Melody:
    """Sample ``bars`` bars in ``mode`` and the meter, in key-normalised pitches (tonic C) within ``pitch_range``
    (inclusive, also key-normalised). ``seed_notes`` (same space, onsets from 0 = a bar line) are kept and
    continued; ``bars`` counts the seed's bars too. ``strong_pitch_classes(bar, position)`` (position in grid
    ticks from the bar line) may name the pitch classes (key-normalised) a note starting there must take, e.g.
    the chord tones on strong beats of an accompanied melody; None leaves the choice free. Raises ValueError
    for a mode or meter the model cannot write, or a seed as long as the requested length."""
    if mode not in SCALES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(SCALES)}")
    tok = tokenizer()
    t_num, t_den = token_meter(numerator, denominator)
    vocab, units_per_tick = _vocab(t_den)
    if (t_num, t_den) not in vocab.time_signatures:
        raise ValueError(f"time signature {numerator}/{denominator} is not supported")
    length = bar_ticks(numerator, denominator)
    beat = beat_ticks(numerator, denominator)
    scale = set(SCALES[mode])
    low, high = pitch_range
    allowed_pitches = {
        p: i for p, i in vocab.pitches.items() if low <= p <= high and (sampling.chromatic or p % 12 in scale)
    }
    cadence_pitches = {p: i for p, i in allowed_pitches.items() if p % 12 in CADENCE_DEGREES}
    if not cadence_pitches:
        raise ValueError("the pitch range holds no tonic or fifth")
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    decoder = stepper_for(net)
    decoder.reset()
    melody = Melody([])
    seed_bars = bars_spanned(max((n.onset + n.duration for n in seed_notes), default=0), numerator, denominator)
    if seed_bars >= bars:
        raise ValueError(f"the seed already has {seed_bars} bars; ask for more than that")

    def bar_header() -> list[int]:
        return [vocab.bar, vocab.time_signatures[(t_num, t_den)]]

    prompt = [tok["BOS_None"], tok[f"Mode_{mode}"]]
    cursor = 0  # the end of the last note, in grid ticks from the start
    for bar in range(seed_bars):
        prompt += bar_header()
        for note in (n for n in seed_notes if bar * length <= n.onset < (bar + 1) * length):
            within = note.onset - bar * length
            duration = min(note.duration, length - within)
            if (
                round(within * units_per_tick) in vocab.positions
                and duration in vocab.durations
                and note.pitch in vocab.pitches
            ):
                prompt += [
                    vocab.positions[round(within * units_per_tick)],
                    vocab.pitches[note.pitch],
                    vocab.durations[duration],
                ]
                melody.notes.append(Note(note.onset, duration, note.pitch))
                cursor = max(cursor, note.onset + duration)
    if melody.notes:  # continue on the next beat after the seed
        cursor = -(-cursor // beat) * beat
    logprobs = _feed(decoder, prompt)
    plain = Sampling(temperature=sampling.temperature)  # positions and durations: temperature only
    recent: list[int] = [n.pitch for n in melody.notes[-REPETITION_WINDOW:]]
    end_of_bar = -1
    half = length // 2
    # a seed ending inside its last bar is continued in that bar, from the next beat after it
    first = seed_bars - 1 if melody.notes and cursor < seed_bars * length else seed_bars
    for bar in range(first, bars):
        start = bar * length
        if bar >= seed_bars:
            logprobs = _feed(decoder, bar_header())
        last_bar = bar == bars - 1
        while cursor < start + length:
            options = {
                p: vocab.positions[int(p * units_per_tick)]
                for p in range(max(cursor - start, 0), length)
                if on_grid(p)
                and (p * units_per_tick).is_integer()
                and int(p * units_per_tick) in vocab.positions
                and (not last_bar or p < half or p % beat == 0)
            }
            if not last_bar:
                options[end_of_bar] = vocab.bar  # the model may end the bar early (the rest is silence)
            position, token, logprob = _choose(logprobs, options, plain, rng)
            if position == end_of_bar:
                break
            cadence = last_bar and position >= half
            logprobs = decoder.feed(token)
            melody.tokens.append(tok[token])
            melody.logprobs.append(logprob)
            penalties = {q: sampling.repetition_penalty for q in recent} if sampling.repetition_penalty != 1.0 else None
            pitches = cadence_pitches if cadence else allowed_pitches
            wanted = strong_pitch_classes(bar, position) if strong_pitch_classes is not None else None
            if wanted is not None:
                pitches = {p: i for p, i in pitches.items() if p % 12 in wanted} or pitches
            pitch, token, logprob = _choose(logprobs, pitches, sampling, rng, penalties)
            logprobs = decoder.feed(token)
            melody.tokens.append(tok[token])
            melody.logprobs.append(logprob)
            room = length - position
            longest = room if cadence or not last_bar else half - position
            durations = {
                d: i for d, i in vocab.durations.items() if (d == room if cadence else 0 < d <= longest and on_grid(d))
            } or {d: i for d, i in vocab.durations.items() if 0 < d <= longest}  # off the grid: the only room left
            duration, token, logprob = _choose(logprobs, durations, plain, rng)
            logprobs = decoder.feed(token)
            melody.tokens.append(tok[token])
            melody.logprobs.append(logprob)
            melody.notes.append(Note(start + position, duration, pitch))
            recent = (recent + [pitch])[-REPETITION_WINDOW:]
            cursor = start + position + duration
            if cadence:
                break
        cursor = max(cursor, start + length)
        if progress is not None:
            progress(100.0 * (bar + 1) / bars)
    return melody
