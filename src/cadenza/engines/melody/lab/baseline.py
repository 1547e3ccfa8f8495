"""Smoothed n-gram baseline on the same melody tokens: interpolated absolute discounting (Ney, Essen &
Kneser 1994) of orders 1…N, backing off to the uniform distribution over the vocabulary."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence


class NGram:
    """An order-``order`` token model. :meth:`fit` on token sequences, :meth:`nll` (nats) on held-out ones."""

    def __init__(self, vocab_size: int, order: int = 5, discount: float = 0.75) -> None:
        self.vocab_size, self.order, self.discount = vocab_size, order, discount
        self.counts: list[dict[tuple[int, ...], Counter]] = [defaultdict(Counter) for _ in range(order)]

    def fit(self, sequences: Iterable[Sequence[int]]) -> NGram:
        for seq in sequences:
            for i in range(1, len(seq)):
                for n in range(self.order):
                    if i - n < 0:
                        break
                    self.counts[n][tuple(seq[i - n : i])][seq[i]] += 1
        self.totals = [
            {key: (sum(table.values()), len(table)) for key, table in level.items()} for level in self.counts
        ]
        return self

    def prob(self, context: Sequence[int], token: int) -> float:
        """P(token | the last order−1 tokens of context), interpolated from the unigram up."""
        p = 1.0 / self.vocab_size
        for n in range(self.order):
            if n > len(context):
                break
            key = tuple(context[len(context) - n :]) if n else ()
            table = self.counts[n].get(key)
            if not table:
                continue
            total, seen = self.totals[n][key]
            p = max(table.get(token, 0) - self.discount, 0.0) / total + self.discount * seen / total * p
        return p

    def nll(self, sequence: Sequence[int], start: int = 2) -> float:
        """Total negative log-likelihood (nats) of ``sequence[start:]`` given what precedes each token."""
        return -sum(
            math.log(self.prob(sequence[max(0, i - self.order + 1) : i], sequence[i]))
            for i in range(start, len(sequence))
        )
