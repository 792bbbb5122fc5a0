"""A plain-Python reference of core.velocity's features: dicts and lists, no eviction, no
numba. The property tests compare CardStore with it bit for bit."""

import math

import numpy as np

H = 86400.0
Z_MAX = float(np.finfo(np.float32).max)   # card_amount_z is kept within float32
RESYNC_RUN = 100     # transactions in a row more than H ahead of the watermark that move it on


class RefStore:
    def __init__(self, max_events: int = 10_000):   # core.velocity.MAX_CARD_EVENTS
        self.cards = {}      # key -> [latest, n, mean, m2, events newest first [(t, a32, m)]]
        self.w = None
        self.ahead = 0
        self.max_events = max_events    # a card holding this many events in 24 h keeps no more

    def one(self, key, t, a32, m):
        a = float(a32)
        c = self.cards.get(key)
        ahead = self.w is not None and t > self.w + H
        if ahead:
            self.ahead += 1
            if self.ahead >= RESYNC_RUN:
                self.w, ahead = t, False
        live = c is not None and (self.w is None or c[0] >= self.w - H)
        if live and not ahead and t > c[0] + H:
            live = False                       # idle for more than H by its own clock
        if live:
            lc = c[0]
            store = not ahead and t >= lc - H
            tt = max(t, lc) if store else lc
            events = c[4]
        else:
            store = self.w is None or (t >= self.w - H and not ahead)
            tt = t
            events = []
        window = [e for e in events if e[0] > tt - H]
        amounts = [a] + [float(e[1]) for e in window]

        def total(span):
            s = a
            for e in window:
                if e[0] > tt - span:
                    s += float(e[1])
            return s

        def count(span):
            return 1 + sum(1 for e in window if e[0] > tt - span)

        micro = (1 if a32 <= 1.0 else 0) + sum(1 for e in window if e[0] > tt - 600.0 and e[1] <= 1.0)
        z = 0.0
        if live and c[1] >= 2:
            std = math.sqrt(c[3] / float(c[1] - 1))
            if std > 0.0:
                z = min(max((a - c[2]) / std, -Z_MAX), Z_MAX)
        micro_1m = (1 if a32 <= 1.0 else 0) + sum(1 for e in window if e[0] > tt - 60.0 and e[1] <= 1.0)
        mcc_10m = len({m} | {e[2] for e in window if e[0] > tt - 600.0})
        micros = [e[0] for e in window if e[1] <= 1.0]          # newest first
        since_micro = (tt - micros[0]) if micros else math.nan
        row = [count(60.0), total(60.0), count(3600.0), total(3600.0), len(amounts), total(H),
               (tt - c[0]) if live else math.nan, z, len({m} | {e[2] for e in window}), micro,
               count(600.0), mcc_10m, micro_1m, since_micro]
        if store and len(window) < self.max_events:
            self.ahead = 0
            if not live:
                c = [None, 0, 0.0, 0.0, []]
                self.cards[key] = c
            k = c[1] + 1
            d = a - c[2]
            c[2] = c[2] + d / float(k)
            c[3] = c[3] + d * (a - c[2])
            c[1] = k
            c[0] = tt
            c[4] = [(tt, a32, m)] + window
            if self.w is None or tt > self.w:
                self.w = tt
        return np.array(row, dtype=np.float32)

    def apply(self, keys, t, amount, mcc):
        return np.array([self.one(k, float(ti), np.float32(a), int(m))
                         for k, ti, a, m in zip(keys, t, amount, mcc)], dtype=np.float32).reshape(-1, 14)


def stateless_model_path():
    """The committed model without velocity features: the default one while it is stateless,
    else models/fraud-model-stateless.meta.json beside it. Tests that compare or run without
    state use it, so that both paths score with the same trees."""
    from core.features import N_FEATURES
    from core.model import load_meta
    from core.paths import default_model_path

    path = default_model_path()
    meta, _ = load_meta(path)
    return path if len(meta.feature_names) == N_FEATURES else path.with_name("fraud-model-stateless.meta.json")
