"""A smoothed n-gram (Markov) baseline on the same discrete representation as the groove transformer.

Per step t the baseline factorises like the model (so NLLs in nats per step are comparable):

* hit pattern (512 symbols): P(p_t | p_{t-2}, p_{t-1}, step in bar) — an interpolated absolute
  discounting back-off chain (Ney, Essen & Kneser 1994, "On structuring probabilistic dependences
  in stochastic language modelling", Computer Speech & Language 8) over the contexts
  (p_{t-2}, p_{t-1}, m) → (p_{t-1}, m) → (m) → add-k uniform over all 512 patterns, where m is the
  metric position (steps_per_bar, step_in_bar);
* for every hit instrument i: P(velocity bin | i, m) and P(offset bin | i, m), absolute
  discounting backed off to (i) and then to add-k uniform over the bins.

It reads whole files, so its history crosses window boundaries (a small advantage over the
transformer, which restarts its context at every evaluation window).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable

import numpy as np

from cadenza.engines.drums.data import (
    N_OFFSET_BINS,
    N_PATTERNS,
    N_VELOCITY_BINS,
    GrooveRecord,
    encode_patterns,
    offset_bins,
    velocity_bins,
)
from cadenza.music.drum_map import N_CLASSES

BOS = -1
DISCOUNT = 0.75
ADD_K = 0.1


class _BackoffCategorical:
    """Categorical over ``n_symbols`` with contexts backed off from longest to shortest.

    P(s | c_0) = max(n(c_0, s) - D, 0) / n(c_0) + D·u(c_0) / n(c_0) · P(s | c_1) … ending in add-k
    uniform; u(c) is the number of distinct symbols seen after context c.
    """

    def __init__(self, n_symbols: int, discount: float = DISCOUNT, add_k: float = ADD_K) -> None:
        self.n_symbols = n_symbols
        self.discount = discount
        self.add_k = add_k
        self.counts: dict[Hashable, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.totals: dict[Hashable, int] = defaultdict(int)
        self.unigram = np.zeros(n_symbols, dtype=np.float64)

    def add(self, contexts: tuple[Hashable, ...], symbol: int) -> None:
        for level, ctx in enumerate(contexts):
            key = (level, ctx)
            self.counts[key][symbol] += 1
            self.totals[key] += 1
        self.unigram[symbol] += 1

    def prob(self, contexts: tuple[Hashable, ...], symbol: int) -> float:
        p = (self.unigram[symbol] + self.add_k) / (self.unigram.sum() + self.add_k * self.n_symbols)
        for level in reversed(range(len(contexts))):
            key = (level, contexts[level])
            total = self.totals.get(key, 0)
            if total == 0:
                continue
            seen = self.counts[key]
            p = (max(seen.get(symbol, 0) - self.discount, 0.0) + self.discount * len(seen) * p) / total
        return p


class NGramBaseline:
    """Fit on GMD records with :meth:`fit`; score with :meth:`nll`."""

    def __init__(self) -> None:
        self.pattern = _BackoffCategorical(N_PATTERNS)
        self.velocity = _BackoffCategorical(N_VELOCITY_BINS)
        self.offset = _BackoffCategorical(N_OFFSET_BINS)

    @staticmethod
    def _steps(rec: GrooveRecord):
        patterns = encode_patterns(rec.grid.hits)
        vel = velocity_bins(rec.grid.velocity)
        off = offset_bins(rec.grid.offset)
        prev2, prev1 = BOS, BOS
        for t, pattern in enumerate(patterns.tolist()):
            metric = (rec.steps_per_bar, t % rec.steps_per_bar)
            yield (prev2, prev1, metric), pattern, vel[t], off[t]
            prev2, prev1 = prev1, pattern

    def fit(self, records: Iterable[GrooveRecord]) -> NGramBaseline:
        for rec in records:
            for (prev2, prev1, metric), pattern, vel, off in self._steps(rec):
                self.pattern.add(((prev2, prev1, metric), (prev1, metric), metric), pattern)
                for i in range(N_CLASSES):
                    if (pattern >> i) & 1:
                        self.velocity.add(((i, metric), i), int(vel[i]))
                        self.offset.add(((i, metric), i), int(off[i]))
        return self

    def nll(self, records: Iterable[GrooveRecord]) -> dict[str, float]:
        """Mean NLL per step (nats): ``total``, ``pattern``, ``velocity``, ``offset``, and ``steps``."""
        sums = {"pattern": 0.0, "velocity": 0.0, "offset": 0.0}
        steps = 0
        for rec in records:
            for (prev2, prev1, metric), pattern, vel, off in self._steps(rec):
                sums["pattern"] -= math.log(
                    self.pattern.prob(((prev2, prev1, metric), (prev1, metric), metric), pattern)
                )
                for i in range(N_CLASSES):
                    if (pattern >> i) & 1:
                        sums["velocity"] -= math.log(self.velocity.prob(((i, metric), i), int(vel[i])))
                        sums["offset"] -= math.log(self.offset.prob(((i, metric), i), int(off[i])))
                steps += 1
        result: dict[str, float] = {k: v / max(steps, 1) for k, v in sums.items()}
        result["total"] = sum(result.values())
        result["steps"] = steps
        return result
