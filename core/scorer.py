"""The scoring core: raw Kafka values in, scored events, alerts and dead letters out.

    scorer = Scorer.load()                      # the committed model, compiled once and cached
    result = scorer.score_batch(values)         # list of raw message values (bytes)
    result.scored  -> [(input index, fraud-scores value)]   every valid input, input order
    result.alerts  -> [(input index, fraud-alerts value)]   the flagged ones, with reasons
    result.dead    -> [(input index, reason)]               the rest, e.g. "missing field: `amount`"

No Kafka here: core.loop wraps this in the transactional consumer. For teams migrating from a
per-message design, `compute_features` + `predict` score one event the old way (slowly); with a
stateful model the Scorer then keeps the card history of one stream (see compute_features).
"""

import numbers
import time
from datetime import datetime, timezone
from decimal import Decimal

import numpy as np

from core.cardfields import card_objects, event_columns
from core.decode import Decoded, decode_batch, number_problem, utc_hour
from core.encode import (
    append_reasons, batch_tail, encode_alert, iso_now, quantize, score_of, splice_scores,
)
from core.errors import ModelError
from core.features import AMOUNT, N_FEATURES, N_V, build_features, fill_derived
from core.model import FraudModel, load_model
from core.reasons import Reasoner
from core.risk import LEVEL_NAMES
from core.schema import WRONG_TYPE
from core.velocity import VELOCITY_FEATURES, CardStore, apply_bounded, epoch_seconds, merchant_id

__all__ = ["Scorer", "BatchResult"]


def _scratch_velocity(d: Decoded, values) -> np.ndarray:
    """Velocity features of the good rows from a fresh core.velocity.CardStore (warm-up)."""
    t, mcc = event_columns(d)
    amount = np.ascontiguousarray(d.x[d.good, AMOUNT])
    return CardStore().apply([b"warm-up"] * len(d.good), t, amount, mcc)

_V_NAMES = tuple(f"V{i}" for i in range(1, N_V + 1))
_WARM_UP = (b'{"transaction_id":"warm-up","card_hash":"0","amount":1.0,'
            b'"timestamp":"2026-01-01T00:00:00Z","merchant_category":"none",'
            + b",".join(b'"%s":0.0' % name.encode() for name in _V_NAMES) + b"}")


class BatchResult:
    """What score_batch returns: lists of (input index, value) in input order.

    scored  [(index, bytes)]  fraud-scores values (the input JSON plus the score fields)
    alerts  [(index, bytes)]  fraud-alerts values, for the inputs with is_fraud
    dead    [(index, str)]    dead-letter reasons "<kind>: <detail>" (core.schema.DEAD_KINDS)
    scores  float32 ndarray   the model's raw scores, aligned with `scored`
    """

    __slots__ = ("scored", "alerts", "dead", "scores")

    def __init__(self, scored, alerts, dead, scores):
        self.scored, self.alerts, self.dead, self.scores = scored, alerts, dead, scores

    def __repr__(self) -> str:
        return (f"BatchResult(scored={len(self.scored)}, alerts={len(self.alerts)}, "
                f"dead={len(self.dead)})")


class Scorer:
    """Scores micro-batches of raw transaction values with one fraud model."""

    __slots__ = ("model", "reasoner", "_predict", "_classify", "_cards")

    def __init__(self, model: FraudModel):
        self.model = model
        self.reasoner = Reasoner(model.contributions)
        self._predict = model.predict
        self._classify = model.risk.classify
        self._cards = None   # the per-message facade's CardStore, made at its first use

    @classmethod
    def load(cls, path=None, *, compile: bool = True) -> "Scorer":
        """Load the model whose metadata file is `path` (default: the committed model).

        Raises core.ModelError at once if it cannot be loaded, never at the first message,
        and scores one sample so the numba kernels are compiled (or loaded from their cache)
        before the first real batch.
        """
        scorer = cls(load_model(path, compile=compile))
        scorer.warm_up([_WARM_UP])
        # compile the reasons' walk
        scorer.reasoner.explain(np.zeros((1, len(scorer.model.meta.feature_names)), np.float32))
        return scorer

    def warm_up(self, values) -> BatchResult:
        """Score values once to compile the kernels; a stateful model gets its velocity
        features from a throwaway card store (warm-up must not touch any partition's state)."""
        return self.score_batch(values, _scratch_velocity if self.needs_velocity else None)

    @property
    def model_version(self) -> str:
        return self.model.meta.model_version

    @property
    def threshold(self) -> float:
        return self.model.meta.threshold

    def score_batch(self, values, velocity=None) -> BatchResult:
        """Score a sequence of raw values; bad values become dead letters, never exceptions
        (TypeError for one bytes or str value instead of a sequence).

        velocity: None (stateless), or a function (Decoded, values) -> float32 (good, N_VELOCITY)
        giving the good rows' core.velocity features (core.cardstate provides it); they are
        written on every scored event as its `card` object, and given to a model that uses them.
        """
        started = time.perf_counter()
        if isinstance(values, (bytes, bytearray, str)):   # one value, not a sequence of them
            raise TypeError(f"score_batch takes a sequence of values (a list of bytes), got one {type(values).__name__}")
        d = decode_batch(values)
        if d.good.size == 0:
            return BatchResult([], [], d.dead, np.empty(0, dtype=np.float32))
        x = self.features(d)
        extra = None
        if velocity is not None:
            card = velocity(d, values)
            extra = card_objects(card)
            if self.needs_velocity:
                x = np.concatenate((x, card), axis=1)
        elif self.needs_velocity:
            raise ModelError(f"model {self.model_version} needs the velocity features "
                             f"{', '.join(VELOCITY_FEATURES)}: score with state on")
        return self.encode(values, d, x, self._predict(x), started, extra)

    @property
    def needs_velocity(self) -> bool:
        """Whether the model's features include core.velocity's (it then needs state on)."""
        return tuple(self.model.meta.feature_names[N_FEATURES:]) == VELOCITY_FEATURES

    # The stages of score_batch, public so that tests/bench can time each one alone.

    def features(self, d: Decoded) -> np.ndarray:
        """The feature matrix of the good rows of a decoded batch (derived columns filled)."""
        good = d.good
        return fill_derived(d.x if good.size == d.x.shape[0] else d.x[good])

    def encode(self, values, d: Decoded, x: np.ndarray, scores: np.ndarray,
               started: float, extra=None) -> BatchResult:
        """Classify scores of d's good rows (features x) and encode scored events and alerts;
        flagged rows get their reasons, computed for them alone. extra: the rows' `card`
        objects (core.cardfields.card_objects), written before the score fields."""
        is_fraud, level = self._classify(scores)
        scored_at = iso_now()
        meta = self.model.meta
        tail = batch_tail(meta.threshold, scored_at,
                          (time.perf_counter() - started) * 1000.0, meta.model_version)
        good = d.good
        scored, q = splice_scores(d.buf, d.starts, d.close, good, scores, is_fraud, level, tail, extra)
        alerts = []
        flagged = is_fraud.nonzero()[0]
        if flagged.size == 0:
            return BatchResult(scored, alerts, d.dead, scores)
        version = meta.model_version
        for k, reasons in zip(flagged.tolist(), self.reasoner.explain(x[flagged])):
            r = int(good[k])
            scored[k] = (r, append_reasons(scored[k][1], reasons))
            alerts.append((r, encode_alert(values[r], int(q[k]), int(level[k]), scored_at,
                                           version, reasons)))
        return BatchResult(scored, alerts, d.dead, scores)

    # -- the per-message facade ---------------------------------------------------------

    def compute_features(self, amount, timestamp, v_features, *, card_hash=None,
                         merchant_category=None) -> np.ndarray:
        """One feature vector (float32, one value per model feature) the way score_batch
        builds its rows.

        timestamp: a datetime (naive means UTC) or an ISO-8601 UTC string ending in Z;
        v_features: a mapping with V1..V28. Bad arguments raise ValueError.

        A stateful model (needs_velocity: the default one) also reads the card's history:
        pass card_hash (the card's key as the service would see it, str or bytes: the
        `card_hash` on the wire) and merchant_category. This Scorer then keeps its own
        core.velocity.CardStore, and every call *is* one transaction applied to it, in call
        order: call once per transaction, in the order of one stream (one partition, as a
        scoring process sees it), never twice for the same one. The vector then equals the
        row score_batch builds for that stream, bit for bit. Not thread-safe; use one Scorer
        per stream (Scorer.load() again for another: the compiled model is cached). The
        state lives in memory only: nothing is restored after a restart.
        A stateless model ignores card_hash and merchant_category.
        """
        timestamp = _utc_text(timestamp)
        hour = utc_hour(timestamp)
        if isinstance(hour, str):
            raise ValueError(hour)
        missing = [name for name in _V_NAMES if name not in v_features]
        if missing:
            raise ValueError(f"v_features lacks {', '.join(missing)}")
        # what score_batch would dead-letter is refused here, with the same reason (amount first)
        amounts = np.array([_number("amount", amount)], dtype=np.float32)
        v = np.array([[_number(name, v_features[name]) for name in _V_NAMES]], dtype=np.float32)
        x = build_features(amounts, np.array([hour], dtype=np.float32), v)[0]
        if not self.needs_velocity:
            return x
        if card_hash is None or merchant_category is None:
            raise ValueError(
                f"model {self.model_version} uses per-card velocity features: pass card_hash= "
                f"and merchant_category= (this Scorer then keeps the cards' history of one "
                f"stream), or load a stateless model, e.g. "
                f"Scorer.load(core.paths.stateless_model_path())")
        key = card_hash.encode() if isinstance(card_hash, str) else bytes(card_hash)
        if not isinstance(merchant_category, str):
            raise ValueError(f"merchant_category must be a str, not {type(merchant_category).__name__}")
        card = self._facade_card(key, epoch_seconds(timestamp), amounts, merchant_id(merchant_category))
        return np.concatenate((x, card))

    def _facade_card(self, key: bytes, t: float, amounts: np.ndarray, mcc: int) -> np.ndarray:
        """The velocity features of one transaction, applied to the facade's CardStore exactly
        as the service applies a batch (core.velocity.apply_bounded: an empty or oversize key
        is a card with no history and is never kept)."""
        if self._cards is None:
            self._cards = CardStore()
        card = apply_bounded(self._cards, [key], np.array([t]), amounts, np.array([mcc], dtype=np.int64))[0]
        self._cards.discard_changes()   # no changelog here: pending changes would only pile up
        return card

    def predict(self, vector) -> dict:
        """Score one feature vector (compute_features'): fraud_score, is_fraud, risk_level,
        threshold_used."""
        x = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        score = self._predict(np.ascontiguousarray(x))
        is_fraud, level = self._classify(score)
        return {
            "fraud_score": score_of(int(quantize(score)[0])),
            "is_fraud": bool(is_fraud[0]),
            "risk_level": LEVEL_NAMES[int(level[0])],
            "threshold_used": self.threshold,
        }


def _number(name: str, value) -> float:
    """`value` (any real number: int, float, Decimal, numpy scalar) as the float score_batch
    would decode for field `name`; ValueError with score_batch's dead-letter reason when it
    would not take it (a str, bool or None as on the wire, a number out of range)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, Decimal)):
        got = "null" if value is None else type(value).__name__
        raise ValueError(f"{WRONG_TYPE}: `{name}` expected float, got {got}")
    try:
        f = float(value)
    except OverflowError:   # an int beyond any float
        f = float("inf") if value > 0 else float("-inf")
    problem = number_problem(name, f)
    if problem:
        raise ValueError(problem)
    return f


def _utc_text(timestamp):
    """A datetime as the wire's UTC text (naive means UTC), so that both forms go through the
    parsers score_batch uses; anything else unchanged (utc_hour judges it)."""
    if not isinstance(timestamp, datetime):
        return timestamp
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(timezone.utc)
    t = timestamp
    frac = f".{t.microsecond:06d}" if t.microsecond else ""
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}{frac}Z"
