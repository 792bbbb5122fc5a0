"""Synthetic card transactions with fraud patterns, generated column-wise with numpy.

One generator serves model training and the load generator, so the transactions the model
learns from are the ones the benchmark sends. Fraud is deliberately *not* trivially separable:
legitimate customers also make large, micro and round-amount payments, and fraud shifts only a
few V components, by a random severity that is zero for a share of camouflaged fraud;
card-testing bursts do not (see below). A good
model lands near the public credit-card benchmark (ROC-AUC ~0.97, PR-AUC well below 1); the
measured figures are in models/README.md.

Cards have histories: a card's amounts follow its own typical amount (lognormal around a
per-card median), legit cards also come in sessions (a shopping trip, transit taps, in-app
purchases: bench.load._synth_cards), and the card-level fraud patterns carry card-level
signatures, so per-card velocity features have something to find and legit bursts to tell
apart from it.

Patterns (the `pattern` column, names in PATTERN_NAMES; the wire's `_synthetic_pattern`):
    legit               not fraud
    high_amount         one large payment, 500-5000
    micro               one card-testing amount, 0.01-1.00
    round_amount        a round 100-1000 (multiples of 50)
    card_testing_burst  micro amounts, `burst_size` of them on one card within `burst_window_s`;
                        each payment's V components are drawn as legit ones are (a tester's
                        payments are ordinary small ones: only the card's behaviour shows)
    velocity            ordinary-looking amounts, `velocity_size` of them on one card within
                        `velocity_window_s`, each in another merchant category
    account_takeover    `takeover_size` payments within `takeover_window_s` on a card with a
                        history, 5-20x the card's own typical amount

Batch rows are sorted by timestamp, as a payment gateway would emit them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np

from bench.load import _synth_cards as cards
from core.features import N_V, build_features

__all__ = [
    "PATTERN_NAMES", "LEGIT", "HIGH_AMOUNT", "MICRO", "ROUND_AMOUNT", "CARD_TESTING_BURST",
    "VELOCITY", "ACCOUNT_TAKEOVER", "FRAUD_PATTERNS", "DEFAULT_MIX", "MERCHANT_CATEGORIES", "DEFAULT_START", "Batch", "generate",
]

PATTERN_NAMES = ("legit", "high_amount", "micro", "round_amount", "card_testing_burst", "velocity",
                 "account_takeover")
(LEGIT, HIGH_AMOUNT, MICRO, ROUND_AMOUNT, CARD_TESTING_BURST, VELOCITY,
 ACCOUNT_TAKEOVER) = range(len(PATTERN_NAMES))
FRAUD_PATTERNS = PATTERN_NAMES[1:]
DEFAULT_MIX = {
    "high_amount": 0.25, "micro": 0.15, "round_amount": 0.15,
    "card_testing_burst": 0.15, "velocity": 0.15, "account_takeover": 0.15,
}
MERCHANT_CATEGORIES = (
    "grocery", "gas_station", "restaurant", "online_retail", "electronics",
    "travel", "entertainment", "pharmacy", "utilities", "jewelry", "transit",
)
# Stand-alone payments; transit mostly comes in sessions (bench.load._synth_cards).
_LEGIT_CATEGORY_P = np.array([0.22, 0.14, 0.18, 0.14, 0.05, 0.05, 0.08, 0.07, 0.05, 0.01, 0.01])
_FRAUD_CATEGORY_P = np.array([0.05, 0.06, 0.05, 0.30, 0.20, 0.12, 0.08, 0.02, 0.02, 0.10, 0.0])
_TYPICAL_MEDIAN = 45.0      # median of the cards' typical amounts
_TYPICAL_SIGMA = 0.7        # spread of log typical amount between cards
_OWN_SIGMA = 0.7            # spread of log amount around the card's own typical amount

# 2026-01-01T00:00:00Z: a fixed default keeps generate() reproducible from the seed alone.
DEFAULT_START = 1_767_225_600.0
_YEAR_10000 = 253_402_300_800.0

# Relative transaction rate per UTC hour: customers sleep, fraudsters less so.
_LEGIT_HOURLY = np.array([0.25, 0.18, 0.14, 0.12, 0.14, 0.25, 0.5, 0.8, 1.0, 1.1, 1.15, 1.2,
                          1.25, 1.2, 1.15, 1.1, 1.1, 1.15, 1.2, 1.1, 0.95, 0.75, 0.55, 0.38])
_FRAUD_HOURLY = np.array([0.9, 1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.7, 0.8, 0.85, 0.9, 0.9,
                          0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])

# The V components fraud moves (0-based; the public data set's strongest are V14, V12, V10,
# V17, V4, V11) and the direction of each.
_SIGNATURE = {13: -1.0, 11: -1.0, 9: -1.0, 16: -1.0, 3: 1.0, 10: 1.0, 2: -0.7, 15: -0.7}
_FRAUD_SHIFT = 1.45         # shift at severity 1, in standard deviations of legit V
_FRAUD_STD = 1.35           # fraud is also wider on the signature components
_CAMOUFLAGED = 0.15         # share of fraud whose V components look entirely legit
_ODD_LEGIT = 0.001          # share of legit that looks half-way like fraud (travel, new phone)

V_DECIMALS = 6              # V values on the wire have 6 decimals; training uses the same values
V_LIMIT = 99.0


@dataclass(frozen=True, eq=False)
class Batch:
    """Columns of n synthetic transactions, sorted by timestamp.

    timestamp is epoch seconds (float64, whole microseconds: exactly what the ISO string on the
    wire says). V is float32 holding exactly the values the JSON carries, so features built from
    these columns equal features built from the decoded JSON.
    """

    transaction_id: np.ndarray     # str
    card_hash: np.ndarray          # str, 16 hex digits
    amount: np.ndarray             # float64, 2 decimals
    timestamp: np.ndarray          # float64 epoch seconds
    merchant_category: np.ndarray  # str
    V: np.ndarray                  # float32 (n, 28)
    label: np.ndarray              # int8 0/1
    pattern: np.ndarray            # int8 index into PATTERN_NAMES

    def __len__(self) -> int:
        return len(self.amount)

    @property
    def hour(self) -> np.ndarray:
        """Hour of day, UTC, as the decoder computes it from the ISO timestamp."""
        micros = np.round(self.timestamp * 1e6).astype(np.int64)
        return ((micros // 3_600_000_000) % 24).astype(np.float32)

    def iso_timestamps(self) -> np.ndarray:
        """ISO-8601 UTC strings ending in Z, microsecond precision."""
        micros = np.round(self.timestamp * 1e6).astype(np.int64).astype("datetime64[us]")
        return np.char.add(np.datetime_as_string(micros, unit="us"), "Z")

    def features(self) -> np.ndarray:
        """The model's feature matrix for these rows (core.features, the serving code path)."""
        return build_features(self.amount, self.hour, self.V)

    def to_json(self, i: int) -> bytes:
        """Row i as a wire-contract Transaction JSON value."""
        from bench.load._synth_json import encode_rows
        return encode_rows(self, i, i + 1)[0]

    def payloads(self, start: int = 0, stop: int | None = None, *, shift_us: int = 0
                 ) -> list[bytes]:
        """Rows start:stop as wire-contract JSON values (the fast way to encode many), their
        timestamps moved by shift_us microseconds (a replayed lap of a pool)."""
        from bench.load._synth_json import encode_rows
        return encode_rows(self, start, len(self) if stop is None else stop, shift_us)

    def iter_json(self, chunk: int = 65_536) -> Iterator[bytes]:
        """Every row as wire-contract JSON, encoded chunk by chunk."""
        for start in range(0, len(self), chunk):
            yield from self.payloads(start, min(start + chunk, len(self)))


def generate(n: int, *, seed: int, fraud_rate: float = 0.002,
             mix: Mapping[str, float] | None = None, n_cards: int = 10_000,
             card_skew: float = 0.0, start: float | None = None, span_s: float = 86_400.0,
             id_offset: int = 0, card_offset: int = 0, burst_size: int = 25,
             burst_window_s: float = 120.0, velocity_size: int = 8,
             velocity_window_s: float = 600.0, takeover_size: int = 3,
             takeover_window_s: float = 1_800.0) -> Batch:
    """n synthetic transactions, reproducible from seed.

    fraud_rate: expected share of fraud. mix: weights of the fraud patterns (keys from
    PATTERN_NAMES[1:], normalised; missing keys weigh 0). card_skew: Zipf exponent of card
    popularity (0 = uniform over n_cards). Timestamps fall in [start, start + span_s).
    id_offset: first transaction number, so several calls can produce distinct ids;
    card_offset: first card number, so several calls can use disjoint cards.

    Example: ``generate(100_000, seed=7, mix={"card_testing_burst": 1.0}, fraud_rate=0.01)``
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= fraud_rate <= 1.0:
        raise ValueError(f"fraud_rate must be in [0, 1], got {fraud_rate}")
    if n_cards < 1:
        raise ValueError(f"n_cards must be >= 1, got {n_cards}")
    if card_offset < 0:
        raise ValueError(f"card_offset must be >= 0, got {card_offset}")
    start = DEFAULT_START if start is None else float(start)
    if span_s <= 0 or not 0.0 <= start < start + span_s <= _YEAR_10000:
        raise ValueError(f"timestamps must fall in years 1970-9999 (start >= 0, span_s > 0), "
                         f"got start={start}, span_s={span_s}")
    weights = _mix_weights(mix)
    rng = np.random.default_rng(seed)
    end = start + span_s

    is_fraud = rng.random(n) < fraud_rate
    pattern = np.zeros(n, dtype=np.int8)
    n_fraud = int(is_fraud.sum())
    pattern[is_fraud] = rng.choice(np.arange(1, len(PATTERN_NAMES)), size=n_fraud, p=weights)

    v = _v_features(rng, pattern)
    card = card_offset + _cards(rng, n, n_cards, card_skew)
    ts = _timestamps(rng, is_fraud, start, span_s)
    category = np.where(
        is_fraud,
        rng.choice(len(MERCHANT_CATEGORIES), size=n, p=_FRAUD_CATEGORY_P),
        rng.choice(len(MERCHANT_CATEGORIES), size=n, p=_LEGIT_CATEGORY_P),
    )
    legit = np.flatnonzero(~is_fraud)
    transit, in_app = cards.place_legit_sessions(rng, legit, card, ts, category,
                                                 MERCHANT_CATEGORIES, end)
    rows = {code: np.flatnonzero(pattern == code) for code in range(1, len(PATTERN_NAMES))}
    for code, size, window in ((CARD_TESTING_BURST, burst_size, burst_window_s),
                               (VELOCITY, velocity_size, velocity_window_s)):
        cards.place_clusters(rng, rows[code], size, window, card, ts, n_cards, card_offset,
                             start, end)
    cards.spread_categories(rng, rows[VELOCITY], velocity_size, category,
                            len(MERCHANT_CATEGORIES) - 1)     # fraud takes no transit
    cards.place_takeovers(rng, rows[ACCOUNT_TAKEOVER], takeover_size, takeover_window_s, legit,
                          card, ts, end)
    amount = _amounts(rng, pattern, _log_typical(card, seed))
    amount[transit] = rng.choice(cards.TRANSIT_FARES, len(transit))
    amount[in_app] = rng.choice(cards.IN_APP_PRICES, len(in_app))

    # Whole microseconds, so the ISO string on the wire is exact and the hour agrees with it.
    ts = np.floor((ts - start) * 1e6) / 1e6 + start
    order = np.argsort(ts, kind="stable")
    numbers = np.arange(id_offset, id_offset + n, dtype=np.uint64)
    return Batch(
        transaction_id=np.char.add("tx-", _hex(_mix64(numbers ^ _mix64(np.uint64(seed))))),
        card_hash=_hex(_mix64(card.astype(np.uint64)))[order],
        amount=amount[order],
        timestamp=ts[order],
        merchant_category=np.asarray(MERCHANT_CATEGORIES)[category[order]],
        V=v[order],
        label=is_fraud[order].astype(np.int8),
        pattern=pattern[order],
    )


def _mix_weights(mix: Mapping[str, float] | None) -> np.ndarray:
    mix = DEFAULT_MIX if mix is None else mix
    unknown = set(mix) - set(FRAUD_PATTERNS)
    if unknown:
        raise ValueError(f"unknown fraud pattern(s) {sorted(unknown)}; known: {FRAUD_PATTERNS}")
    w = np.array([float(mix.get(name, 0.0)) for name in FRAUD_PATTERNS])
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"mix weights must be >= 0 with a positive sum, got {dict(mix)}")
    return w / w.sum()


def _log_typical(card: np.ndarray, seed: int) -> np.ndarray:
    """Log of each card's typical amount: a function of (card, seed), so a card keeps its
    profile wherever its rows were placed (Box-Muller from two hashes of the card number)."""
    key = card.astype(np.uint64) ^ _mix64(np.uint64(seed) ^ np.uint64(0x5EED))
    u1 = (_mix64(key) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    u2 = (_mix64(key ^ np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    z = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
    return np.log(_TYPICAL_MEDIAN) + _TYPICAL_SIGMA * z


def _amounts(rng: np.random.Generator, pattern: np.ndarray, log_typical: np.ndarray
             ) -> np.ndarray:
    n = len(pattern)
    # Legit: everyday spending around the card's own typical amount, plus the shapes fraud
    # also has.
    kind = rng.choice(4, size=n, p=[0.905, 0.05, 0.015, 0.03])
    amount = np.exp(rng.normal(log_typical, _OWN_SIGMA, n))
    round_values = np.array([10, 20, 25, 50, 100, 150, 200, 250, 300, 400, 500, 1000], float)
    amount = np.where(kind == 1, rng.choice(round_values, n), amount)
    amount = np.where(kind == 2, rng.uniform(0.01, 1.0, n), amount)
    amount = np.where(kind == 3, np.exp(rng.normal(np.log(900.0), 0.6, n)), amount)
    # Fraud, by pattern.
    amount = np.where(pattern == HIGH_AMOUNT, rng.uniform(500.0, 5000.0, n), amount)
    amount = np.where((pattern == MICRO) | (pattern == CARD_TESTING_BURST),
                      rng.uniform(0.01, 1.0, n), amount)
    amount = np.where(pattern == ROUND_AMOUNT, 50.0 * rng.integers(2, 21, n), amount)
    amount = np.where(pattern == VELOCITY, np.exp(rng.normal(np.log(80.0), 0.8, n)), amount)
    # account takeover: a sudden change against the card's own profile
    amount = np.where(pattern == ACCOUNT_TAKEOVER,
                      np.exp(log_typical + rng.uniform(np.log(5.0), np.log(20.0), n)), amount)
    return np.round(np.clip(amount, 0.01, 25_000.0), 2)


def _v_features(rng: np.random.Generator, pattern: np.ndarray) -> np.ndarray:
    n = len(pattern)
    v = rng.standard_normal((n, N_V), dtype=np.float32)
    # Card testing is drawn as legit is: a tester's micro payments are ordinary small online
    # payments one by one; what gives them away is the card's behaviour (many in minutes).
    fraud = (pattern != LEGIT) & (pattern != CARD_TESTING_BURST)
    odd = (~fraud) & (rng.random(n) < _ODD_LEGIT)
    rows = np.flatnonzero(fraud | odd)           # only these few rows move
    severity = np.where(fraud[rows], rng.uniform(0.2, 1.6, len(rows)),
                        rng.uniform(0.3, 1.0, len(rows)))
    severity[fraud[rows] & (rng.random(len(rows)) < _CAMOUFLAGED)] = 0.0
    widen = np.where(fraud[rows], _FRAUD_STD, 1.0)[:, None]
    cols = np.fromiter(_SIGNATURE, dtype=np.intp)
    direction = np.fromiter(_SIGNATURE.values(), dtype=float)
    sub = v[np.ix_(rows, cols)] * widen + severity[:, None] * _FRAUD_SHIFT * direction
    v[np.ix_(rows, cols)] = sub
    # Exactly the decimals the wire carries: V holds float32(k / 10**6) for integers k, which
    # is what decoding the JSON decimal and storing it as float32 gives back.
    np.clip(v, -V_LIMIT, V_LIMIT, out=v)
    k = np.rint(v * np.float32(10 ** V_DECIMALS))
    return (k.astype(np.float64) / 10 ** V_DECIMALS).astype(np.float32)


def _cards(rng: np.random.Generator, n: int, n_cards: int, skew: float) -> np.ndarray:
    if skew <= 0:
        return rng.integers(0, n_cards, n)
    p = 1.0 / np.arange(1, n_cards + 1) ** skew
    return rng.choice(n_cards, size=n, p=p / p.sum())


def _timestamps(rng, is_fraud, start, span_s) -> np.ndarray:
    """Uniform over the span, then reweighted by the hour-of-day profile of each class:
    pick one of 4 candidate times per row with probability proportional to its hour weight."""
    n = len(is_fraud)
    cand = start + rng.random((n, 4)) * span_s
    hours = (np.floor(cand / 3600.0) % 24).astype(np.intp)
    w = np.where(is_fraud[:, None], _FRAUD_HOURLY[hours], _LEGIT_HOURLY[hours])
    cum = np.cumsum(w, axis=1)
    pick = (cum < rng.random(n)[:, None] * cum[:, -1:]).sum(axis=1)
    return cand[np.arange(n), np.minimum(pick, 3)]


def _mix64(x) -> np.ndarray:
    """splitmix64 finaliser: distinct inputs give distinct, well-spread 64-bit outputs."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex(x: np.ndarray) -> np.ndarray:
    """16 lowercase hex digits per uint64, as a str array."""
    x = np.atleast_1d(np.asarray(x, dtype=np.uint64))
    shifts = np.arange(60, -1, -4, dtype=np.uint64)
    digits = _HEX[((x[:, None] >> shifts) & np.uint64(15)).astype(np.intp)]
    return np.ascontiguousarray(digits).view("S16").ravel().astype("U16")
