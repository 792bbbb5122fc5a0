"""Per-card velocity features over exact sliding windows, and the state they come from.

One CardStore per input partition. `apply` takes a micro-batch in the partition's offset
order and returns, for every transaction, the fourteen VELOCITY_FEATURES (float32, NaN for
"no previous transaction"), updating the state as it goes, so a card's transactions inside one
batch see each other in order:

    store = CardStore()
    feats = store.apply(keys, t, amount, mcc)     # keys: card keys (bytes), t: epoch seconds
                                                  # (float64, see epoch_seconds), amount:
                                                  # float32, mcc: merchant ids (merchant_id)
    store.changes()  -> [(key, value or None)]    # cards evicted or changed since last call
                                                  # (core.cardstate calls it once per snapshot)
    store.restore([(key, value or None), ...])    # rebuild from changelog values, in order
    apply_bounded(store, keys, t, amount, mcc)    # store.apply with the no-card rule (empty
                                                  # or oversize key): what the service, its
                                                  # replay and Scorer's facade call

Windows count this transaction and the card's earlier ones with time in (t - w, t]: 1 min,
1 h, 24 h (counts and amount sums), 10 min (count), micro amounts (<= 1.00) in 10 min and in
1 min, distinct merchant categories in 24 h and in 10 min. card_secs_since_prev,
card_secs_since_micro (since the card's previous amount <= 1.00 within 24 h, NaN if none) and
card_amount_z (Welford mean and sample deviation over all the card's earlier applied amounts;
0 below two or when the deviation is 0, within float32's range) use the state before this transaction. The 10-min and
1-min micro features see a card-testing burst's rhythm (dozens of micro amounts in a few
minutes, in many merchant categories) where a legit burst (in-app purchases, transit taps) has
a few, minutes apart, at one merchant category. All of them come from the events the state
keeps anyway (time, amount, merchant of the last 24 h), so the record layout is unchanged.

Time policy (event time = the transaction's `timestamp`). The partition's watermark W is the
latest time applied so far. A card idle for more than 24 h (before W, or before its own next
transaction) is forgotten: its next transaction starts it afresh. A transaction more than
24 h ahead of W, or more than 24 h before its card's latest time (a new card: before W), is
a bad clock: scored against the state it finds, as if at the card's latest time (a new card:
alone), and changes no state; one less than 24 h before the card's latest time is applied at
that latest time. So one bad clock can corrupt neither its card's windows nor the watermark
(which would evict every other card). But when 100 transactions in a row are more than 24 h
ahead of W (RESYNC_RUN), the partition's traffic has resumed after a pause of more than a day:
W moves to the 100th one's time, which starts its card afresh, and every card seen before the
pause is idle. The 99 before it were scored as bad clocks. (Without this, one day without
traffic would leave the partition keeping no state ever again.) The price: a source whose
clock runs more than a day ahead, alone in its partition for 100 transactions in a row,
moves the partition's time; on-time transactions then count as late (applied at their card's
latest time, or as bad clocks for cards not seen since) until the partition's time is reached.
The one transaction nothing judges is a partition's first (on an empty state): one dated far
ahead sets the partition's time there, and no later card is kept until the time is reached or
the state is reset (not moved back by a run behind it, which a backfill of old records would
trigger too). The stats line's card count shows it.

Bounds. A card keeps at most MAX_CARD_EVENTS events: a transaction of a card that already holds
that many within 24 h is scored against them and, like a bad clock, changes no state, so its
changelog value stays far below the producer's message limit. A record without a key (or with
an empty one) is no card, nor is one whose key is longer than MAX_CARD_KEY_BYTES: it is scored
as a card's first transaction and never kept (apply_bounded), so keyless traffic does not pile
up on one card.

Bit-identical for any batch split and any x86-64 CPU: core/_velocity_kernel.py says how.
"""

from __future__ import annotations

import numpy as np

from core import _velocity_kernel as k
from core.cardindex import CardIndex, flat_keys
from core.recordbatch import flatten, pieces

__all__ = ["CardStore", "VELOCITY_FEATURES", "VELOCITY_COUNTS", "N_VELOCITY", "epoch_seconds",
           "merchant_id", "StateRecordError", "BYTES_PER_EVENT", "MAX_CARD_KEY_BYTES",
           "apply_bounded", "MAX_CARD_EVENTS", "MAX_STATE_VALUE_BYTES"]

VELOCITY_FEATURES = (
    "card_tx_1m", "card_amount_1m", "card_tx_1h", "card_amount_1h", "card_tx_24h",
    "card_amount_24h", "card_secs_since_prev", "card_amount_z", "card_mcc_24h",
    "card_micro_10m", "card_tx_10m", "card_mcc_10m", "card_micro_1m", "card_secs_since_micro",
)
# the features that count transactions (integers; the others are amounts, seconds, a z-score)
VELOCITY_COUNTS = frozenset(n for n in VELOCITY_FEATURES
                            if n.startswith(("card_tx", "card_mcc", "card_micro")))
N_VELOCITY = len(VELOCITY_FEATURES)
assert N_VELOCITY == k.N_OUT
# event arrays: t f64 + amount f32 + merchant i64 + next i64 + its free-stack entry i64
BYTES_PER_EVENT = 8 + 4 + 8 + 8 + 8
_CARD_ARRAYS = ("latest", "cn", "mean", "m2", "head", "nev", "used", "mark")
_EVENT_ARRAYS = ("e_t", "e_amt", "e_mcc", "e_next", "e_free")
_SWEEP_MIN = 256
_FNV_OFFSET, _FNV_PRIME, _MASK64 = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1

# A card key longer than this is no card hash (they are tens of bytes), and neither is an empty
# key (a record without one): such a transaction is scored as a card with no history and never
# kept. So a changelog record's key is bounded (a 1 MB key made every batch's commit fail), and
# keyless records do not pile up on one card b"". Its value is bounded by MAX_CARD_EVENTS
# (core._velocity_kernel): together a record is at most 36 + 1,024 + MAX_STATE_VALUE_BYTES
# bytes (core.snapshot checks that the state topic takes it).
MAX_CARD_KEY_BYTES = 1024
MAX_CARD_EVENTS = k.MAX_CARD_EVENTS
MAX_STATE_VALUE_BYTES = k.HEAD_BYTES + MAX_CARD_EVENTS * k.EVENT_BYTES

_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def epoch_seconds(timestamp: str) -> float:
    """Seconds since 1970 of an ISO-8601 UTC `YYYY-MM-DDTHH:MM:SS[.f]Z` string, computed
    exactly as the scorer does (whole seconds + fraction / 10^digits, in float64)."""
    year, month, day = int(timestamp[0:4]), int(timestamp[5:7]), int(timestamp[8:10])
    secs = (_days_from_civil(year, month, day) * 86400 + int(timestamp[11:13]) * 3600
            + int(timestamp[14:16]) * 60 + int(timestamp[17:19]))
    frac = timestamp[20:-1]
    return float(secs) + (int(frac) / float(10 ** len(frac)) if frac else 0.0)


def _days_from_civil(y: int, m: int, d: int) -> int:
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = _DAYS_BEFORE[m - 1] + (1 if leap and m > 2 else 0) + d - 1
    y1 = y - 1
    return days + y1 * 365 + y1 // 4 - y1 // 100 + y1 // 400 - 719162


def merchant_id(category: str | bytes) -> int:
    """The int64 a merchant category is counted by: 64-bit FNV-1a of its UTF-8 bytes."""
    data = category.encode() if isinstance(category, str) else bytes(category)
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK64
    return h - (1 << 64) if h >= 1 << 63 else h


def apply_bounded(store: "CardStore", keys: list, t, amount, mcc) -> np.ndarray:
    """store.apply(keys, t, amount, mcc) with the no-card rule, the way every scoring path
    applies transactions (core.cardstate for the service and its replay, core.scorer's
    per-message facade): a row whose key is empty (a record without a key: the loop and the
    replay pass None as b"") or longer than MAX_CARD_KEY_BYTES gets the features of a card's
    first transaction (each such row a card of its own, so they do not depend on the batch or
    on other rows with the same key) and changes nothing in `store`: no card, no watermark, no
    changelog entry. The other rows are applied in order as store.apply does."""
    flat = flat_keys(keys)        # once: its lengths give the rule, its bytes the index
    n = len(keys)
    if not n or (0 < len(keys[0]) <= MAX_CARD_KEY_BYTES if n == 1 else
                 0 < int(flat.lens.min()) and int(flat.lens.max()) <= MAX_CARD_KEY_BYTES):   # usual
        return store.apply(flat, t, amount, mcc)
    t, amount, mcc = np.asarray(t), np.asarray(amount), np.asarray(mcc)
    none = (flat.lens > MAX_CARD_KEY_BYTES) | (flat.lens == 0)
    out = np.empty((len(keys), N_VELOCITY), dtype=np.float32)
    keep = (~none).nonzero()[0]
    if keep.size:
        out[keep] = store.apply([keys[i] for i in keep.tolist()], t[keep], amount[keep], mcc[keep])
    alone = none.nonzero()[0]
    # one throw-away store, a distinct key per row: a new card's features do not depend on the
    # time or the watermark, so this is each row alone at the cost of one store per batch (not
    # one per row: 57 us each, too slow for a topic whose producers set no keys)
    out[alone] = CardStore(alone.size, alone.size).apply([b"%d" % i for i in range(alone.size)], t[alone],
                                                         amount[alone], mcc[alone])
    return out


class StateRecordError(ValueError):
    """A changelog value that is not a valid card state; `index` is its position."""

    def __init__(self, index: int):
        super().__init__(f"record {index} is not a valid card state")
        self.index = index


class CardStore:
    """The velocity state of the cards of one partition (see the module docstring)."""

    def __init__(self, cards: int = 1024, events: int = 4096, *, max_events: int = MAX_CARD_EVENTS):
        if max_events < 1:
            raise ValueError(f"max_events must be at least 1, not {max_events}")
        # the service keeps MAX_CARD_EVENTS (its changelog and replay rely on it): another
        # bound is for tests that compare with a reference at a few events
        self._max_events = max_events
        self._index = CardIndex(cards)     # card key -> slot (core.cardindex)
        self._alloc_cards(cards)
        self._alloc_events(events)
        self.scal = np.zeros(k.N_SCAL, dtype=np.int64)
        self.scal[k.FREE_TOP] = events
        self.e_free[:] = np.arange(events - 1, -1, -1)
        self.wm = np.full(1, np.nan)
        self.scratch = np.empty(64, dtype=np.int64)
        # dirty-card tracking for the changelog: a flag per card slot (set for a whole batch
        # with one numpy store, not a dict entry per card) and the keys evicted since changes()
        self._changed = np.zeros(cards, dtype=np.bool_)
        self._evicted: list[bytes] = []

    # -- sizes -------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Cards in state (including idle ones the sweep has not reached yet)."""
        return len(self._index)

    @property
    def watermark(self) -> float:
        return float(self.wm[0])

    @property
    def ahead(self) -> int:
        """Transactions in a row, up to now, more than 24 h ahead of the watermark (see the
        time policy); part of a snapshot, as the watermark is."""
        return int(self.scal[k.AHEAD])

    @ahead.setter
    def ahead(self, count: int) -> None:
        self.scal[k.AHEAD] = count

    def nbytes(self) -> int:
        """Bytes of the arrays (allocated capacity), the key index's included, O(1)."""
        arrays = sum(getattr(self, a).nbytes for a in _CARD_ARRAYS + _EVENT_ARRAYS)
        return arrays + self._changed.nbytes + self._index.nbytes()

    # -- the batch ---------------------------------------------------------------------------

    def apply(self, keys, t, amount, mcc) -> np.ndarray:
        """Features (float32 (n, N_VELOCITY)) of transactions in order; the state is updated.
        keys: a list of bytes, or the FlatKeys of one (core.cardindex.flat_keys)."""
        n = len(keys)
        t = np.ascontiguousarray(t, dtype=np.float64)
        amount = np.ascontiguousarray(amount, dtype=np.float32)
        mcc = np.ascontiguousarray(mcc, dtype=np.int64)
        if not t.shape == amount.shape == mcc.shape == (n,):
            raise ValueError(f"keys, t, amount and mcc must have one entry per transaction ({n})")
        ids = self._ids(keys)
        self._reserve_events(n)
        # the kernel keeps a card's distinct merchants in scratch: at most its events + 1, and
        # this batch can add n events to a card (up to the bound). Sized by MAX_NEV alone, one
        # batch of a card in over 62 merchants wrote past its end (a segfault, 2026-12-06).
        most = int(self.scal[k.MAX_NEV])
        need = k.LISTED + 64 + 4 * (max(most, min(most + n, self._max_events)) + 1)
        if self.scratch.shape[0] < need:
            self.scratch = np.empty(2 * need, dtype=np.int64)
        out = np.empty((n, k.N_OUT), dtype=np.float32)
        touched = np.empty(n, dtype=np.int64)
        nt = k.apply_batch(ids, t, amount, mcc, out, touched, *self._card_arrays(),
                           *self._event_arrays(), self.scal, self.wm, self.scratch, self._max_events)
        self._changed[touched[:nt]] = True
        self._sweep(max(2 * n, _SWEEP_MIN))
        return out

    def _ids(self, keys) -> np.ndarray:
        """The card slot of every key, new cards given slots (in first-seen order)."""
        # keys to one buffer first: a key that is not bytes-like raises here, index untouched
        return self._index.lookup(flat_keys(keys), self._grow_cards)

    def _sweep(self, budget: int) -> None:
        evicted = np.empty(min(budget, self.latest.shape[0]), dtype=np.int64)
        ne = k.sweep(budget, evicted, self.latest, self.head, self.nev, self.used,
                     self.e_next, self.e_free, self.scal, self.wm)
        if ne:
            evicted = evicted[:ne]
            had_state = evicted >= 0
            cards = np.where(had_state, evicted, ~evicted)
            if had_state.any():
                self._evicted.extend(self._index.keys(cards[had_state]))
            self._changed[cards] = False
            self._index.remove(cards)

    # -- changelog ---------------------------------------------------------------------------

    def changes(self) -> list[tuple[bytes, bytes | None]]:
        """(key, None) for every card evicted since the last call, then (key, value) for every
        card changed (in slot order, each once however often it changed): what the changelog
        needs to reproduce this state. Clears both."""
        ids = self._changed.nonzero()[0]
        self._changed[:] = False
        # tombstones first: a card evicted and then seen again must end with its new state
        out = [(key, None) for key in self._evicted]
        self._evicted = []
        if ids.size:
            nev = self.nev[ids]
            buf = np.empty(int(ids.size * k.HEAD_BYTES + nev.sum() * k.EVENT_BYTES), dtype=np.uint8)
            ends = np.empty(ids.size, dtype=np.int64)
            k.encode_cards(ids, buf, ends, self.latest, self.cn, self.mean, self.m2, self.head,
                           self.nev, self.e_t, self.e_amt, self.e_mcc, self.e_next)
            out.extend(zip(self._index.keys(ids), pieces(buf.tobytes(), ends)))
        return out

    def discard_changes(self) -> None:
        """Forget pending changes (the store itself is being thrown away or was just restored)."""
        self._changed[:] = False
        self._evicted = []

    def restore(self, records) -> None:
        """Apply changelog records (key, value-or-None) in order. Raises StateRecordError
        naming the index of the first undecodable value (the store must then be dropped)."""
        self.restore_columns([r[0] for r in records], [r[1] for r in records])

    def restore_columns(self, keys: list, values: list) -> None:
        """restore() with the keys and the values (None: tombstone) in two lists."""
        if keys:
            self.restore_flat(keys, *flatten(values))

    def restore_flat(self, keys: list, buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> None:
        """restore() with value i at buf[starts[i]:starts[i] + lengths[i]] (uint8; length -1:
        tombstone), keys a list of bytes or a FlatKeys: a changelog read into one buffer makes
        no bytes object per key or value."""
        n = len(keys)
        if n == 0:
            return
        ids = self._index.restore_ids(flat_keys(keys), self._grow_cards)
        sizes = np.maximum(lengths, 0)
        self._reserve_events(int(np.maximum(sizes - k.HEAD_BYTES, 0).sum()) // k.EVENT_BYTES + 1)
        bad = k.restore_cards(ids, buf, starts, lengths, *self._card_arrays()[:7],
                              *self._event_arrays(), self.scal, self.wm)
        if bad >= 0:
            raise StateRecordError(int(bad))
        # only a tombstoned card can be left unused (a bad value raised above): free those
        tomb = ids[lengths < 0]
        if tomb.size:
            tomb = np.unique(tomb)
            self._index.remove(tomb[self.used[tomb] == 0])
        self.discard_changes()

    # -- arrays ------------------------------------------------------------------------------

    def _card_arrays(self):
        return (self.latest, self.cn, self.mean, self.m2, self.head, self.nev, self.used,
                self.mark)

    def _event_arrays(self):
        return (self.e_t, self.e_amt, self.e_mcc, self.e_next, self.e_free)

    def _alloc_cards(self, n: int) -> None:
        self.latest = np.full(n, np.nan)
        self.cn = np.zeros(n, dtype=np.int64)
        self.mean = np.zeros(n)
        self.m2 = np.zeros(n)
        self.head = np.full(n, -1, dtype=np.int64)
        self.nev = np.zeros(n, dtype=np.int64)
        self.used = np.zeros(n, dtype=np.int8)
        self.mark = np.zeros(n, dtype=np.int64)

    def _alloc_events(self, n: int) -> None:
        self.e_t = np.empty(n)
        self.e_amt = np.empty(n, dtype=np.float32)
        self.e_mcc = np.empty(n, dtype=np.int64)
        self.e_next = np.empty(n, dtype=np.int64)
        self.e_free = np.empty(n, dtype=np.int64)

    def _grow_cards(self, at_least: int = 1) -> None:
        old = self.latest.shape[0]
        new = max(2 * old, 1024)
        while new < old + at_least:   # powers of two as before: 1M cards fit 1,048,576 slots
            new *= 2
        saved = self._card_arrays()
        self._alloc_cards(new)
        for dst, src in zip(self._card_arrays(), saved):
            dst[:old] = src
        self._changed = np.concatenate((self._changed, np.zeros(new - old, dtype=np.bool_)))
        self._index.grow_cards(new)

    def _reserve_events(self, n: int) -> None:
        free = int(self.scal[k.FREE_TOP])
        if free >= n:
            return
        old = self.e_t.shape[0]
        new = max(2 * old, old + n - free + 1024)
        saved = self._event_arrays()
        self._alloc_events(new)
        for dst, src in zip(self._event_arrays()[:4], saved[:4]):
            dst[:old] = src
        # the free stack: the old free slots, then the new ones
        self.e_free[:free] = saved[4][:free]
        self.e_free[free:free + new - old] = np.arange(new - 1, old - 1, -1)
        self.scal[k.FREE_TOP] = free + new - old
