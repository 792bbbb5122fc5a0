"""The event times and seeds of the traffic `bench produce` sends, chunk by chunk.

bench.load.synth draws a chunk of transactions over an event-time span. The per-card features
measure a card's history in event time, and the model learned them on ~7 payments per card a
day (bench.model.train.TrainConfig.n_cards). Spanning each chunk by the seconds it takes to send
(50,000 rows at 2,000 tx/s: 25 s over 10,000 cards) gave every card a payment every few seconds,
a velocity attack to the model: the stateful model alerted on ~3.7 % of a demo's transactions for
~1 % fraud. So event time runs at the training traffic's pace instead, and ends where the send
starts: a demo is that much card history replayed in real time. Each chunk has its own seed;
one seed for all of them repeated the first chunk's cards and amounts in every later chunk.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DemoChunk", "demo_chunks", "PAYMENTS_PER_CARD_DAY", "CHUNK"]

PAYMENTS_PER_CARD_DAY = 7.0   # the training traffic's uniform stream (bench.model.train)
CHUNK = 50_000                # rows generated at a time


class DemoChunk(NamedTuple):
    """generate(n, seed=seed, start=start, span_s=span_s, id_offset=id_offset, ...)."""
    n: int
    seed: int
    start: float
    span_s: float
    id_offset: int


def demo_chunks(total: int, *, cards: int, seed: int, end: float, chunk: int = CHUNK) -> list[DemoChunk]:
    """Chunks of `total` rows whose event times follow each other without overlap and end at
    `end` (epoch seconds), at PAYMENTS_PER_CARD_DAY per card. ValueError if they would start
    before 1970."""
    if total < 1 or cards < 1 or chunk < 1:
        raise ValueError(f"total, cards and chunk must be >= 1, got {total}, {cards}, {chunk}")
    row_s = 86_400.0 / (cards * PAYMENTS_PER_CARD_DAY)
    first = end - total * row_s
    if first < 0:
        raise ValueError(f"{total:,} transactions on {cards:,} cards are {total * row_s / 86_400:,.0f} "
                         "days of card history, more than since 1970: use more --cards")
    out = []
    for i, lo in enumerate(range(0, total, chunk)):
        n = min(chunk, total - lo)
        # distinct seeds per chunk, and per --seed (seed s's chunk 1 is not seed s+1's chunk 0)
        out.append(DemoChunk(n, (seed * 1_000_003 + i) % 2 ** 63, first + lo * row_s, n * row_s, lo))
    return out
