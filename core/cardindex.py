"""The card-key index of core.velocity: card key (bytes) -> card slot, in numpy arrays.

A CardStore keeps 1M cards; a Python dict of 1M bytes keys made 70 % of a restore's time
(the key objects and the dict's entries) and took ~66 MB more than this index. Here a batch of
keys is one numba call, no object per key:

    keys     every card's key lives in one uint8 buffer `kbuf` at kmeta[c] = (offset, length)
             (length -1: the slot holds no card); bytes freed by a removal are reclaimed when
             the buffer is full (live keys copied to a new one, in slot order)
    khash    a 64-bit SipHash-1-3 of the key (core._siphash) under a random per-index secret,
             as Python's own bytes hash: keys come from outside, a seeded hash keeps colliding
             keys from being made to order
    table    open addressing, linear probing, power-of-two size, at most half full: -1, or
             the card slot with the hash's high 31 bits above it (a probe compares those
             before it reads a key); removal shifts the following entries back (no
             tombstones, so probes never lengthen with churn); growth rehashes from khash
    free     a stack of free card slots (top at st[FREE]): new cards pop from it, removed
             ones are pushed, in the order the dict-based index did (the slots decide the
             sweep's order)

Lookups compare the hash tag, then the length, then the bytes: keys that are prefixes of each
other, or empty, are distinct keys. The slot a key gets never depends on its hash, so
features and the changelog do not depend on the per-process secret.
"""

from __future__ import annotations

import os

import numba as nb
import numpy as np

from core._siphash import siphash_inline as _siphash
from core.recordbatch import pieces

__all__ = ["CardIndex", "FlatKeys", "flat_keys"]

_jit = nb.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy", _nrt=False)
_inline = nb.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy", inline="always")

COUNT, KUSED, KLIVE, FREE = range(4)      # st: cards in the table, kbuf bytes used / live, free top
_EMPTY = -1
_MIN_TABLE = 2048
_U = np.uint64
_LOW = np.int64(0xFFFFFFFF)          # a table entry: hash tag << 32 | card slot (< 2**32)
_HIGH = ~_LOW


@_inline
def _same(kbuf, off, data, pos, n):
    for b in range(n):
        if kbuf[off + b] != data[pos + b]:
            return False
    return True


@_inline
def _tag(h):
    """The high 31 bits of h in the high half of an entry: a probe compares them before it
    reads the card's key (its home position comes from the low bits)."""
    return np.int64(h >> _U(33)) << 32


@_inline
def _find(table, kmeta, kbuf, h, data, pos, n):
    """The table position holding the key data[pos:pos + n] (hash h), or the empty position
    where it would go, as (position, found)."""
    mask = table.shape[0] - 1
    i = np.int64(h & _U(mask))
    tag = _tag(h)
    while True:
        e = table[i]
        if e == _EMPTY:
            return i, False
        if (e & _HIGH) == tag:
            c = e & _LOW
            if kmeta[c, 1] == n and _same(kbuf, kmeta[c, 0], data, pos, n):
                return i, True
        i = (i + 1) & mask


@_inline
def _enter(c, h, data, pos, n, at, table, khash, kmeta, kbuf, st):
    """Card slot c takes the key data[pos:pos + n] at empty table position `at`; the caller
    made room in kbuf and the table."""
    table[at] = _tag(h) | c
    khash[c] = h
    used = st[KUSED]
    for b in range(n):
        kbuf[used + b] = data[pos + b]
    kmeta[c, 0] = used
    kmeta[c, 1] = n
    st[KUSED] = used + n
    st[KLIVE] += n
    st[COUNT] += 1


@_jit
def _hashes(data, starts, lens, k0, k1, hashes):
    for r in range(starts.shape[0]):
        hashes[r] = _siphash(data, starts[r], lens[r], k0, k1, 1, 3)


@_jit
def _lookup(data, starts, lens, hashes, ids, seen, table, kmeta, kbuf):
    """ids[r] = the card slot of key r, or -1 - f for a key not in the table, f the row of its
    first occurrence (the keys new to the table are deduplicated in `seen`, an empty table of
    rows at most half full, left empty); returns how many distinct new keys and their bytes."""
    smask = seen.shape[0] - 1
    need = 0
    nbytes = 0
    for r in range(starts.shape[0]):
        i, found = _find(table, kmeta, kbuf, hashes[r], data, starts[r], lens[r])
        if found:
            ids[r] = table[i] & _LOW
            continue
        h, pos, n = hashes[r], starts[r], lens[r]
        j = np.int64(h & _U(smask))
        while True:
            f = seen[j]
            if f == _EMPTY:
                seen[j] = r
                ids[r] = -1 - r
                need += 1
                nbytes += n
                break
            if hashes[f] == h and lens[f] == n and _same(data, starts[f], data, pos, n):
                ids[r] = -1 - f
                break
            j = (j + 1) & smask
    if need:
        seen[:] = _EMPTY           # empty again for the next batch
    return need, nbytes


@_jit
def _insert_new(data, starts, lens, hashes, ids, need, free, table, khash, kmeta, kbuf, st):
    """Give the `need` new keys of _lookup (ids < 0) slots: the k-th, in first-seen order,
    takes free[top - need + k] (as the dict-based index did); then every row of a new key gets
    its slot. The caller made room for `need` cards and their bytes."""
    base = st[FREE] - need
    k = 0
    for r in range(ids.shape[0]):
        f = ids[r]
        if f >= 0:
            continue
        f = -1 - f
        if f == r:
            c = free[base + k]
            k += 1
            at, _ = _find(table, kmeta, kbuf, hashes[r], data, starts[r], lens[r])
            _enter(c, hashes[r], data, starts[r], lens[r], at, table, khash, kmeta, kbuf, st)
            ids[r] = c
        else:
            ids[r] = ids[f]
    st[FREE] = base


@_jit
def _restore_ids(data, starts, lens, hashes, ids, free, table, khash, kmeta, kbuf, st):
    """ids[r] = the slot of key r, a new key entered at once with the next free slot popped
    (a restore's keys are mostly new: one probe each). The caller made room for every row."""
    for r in range(starts.shape[0]):
        i, found = _find(table, kmeta, kbuf, hashes[r], data, starts[r], lens[r])
        if not found:
            top = st[FREE] - 1
            st[FREE] = top
            _enter(free[top], hashes[r], data, starts[r], lens[r], i, table, khash, kmeta, kbuf, st)
        ids[r] = table[i] & _LOW


@_jit
def _remove(cards, free, table, khash, kmeta, st):
    """Take these cards out of the table (backward-shift deletion: no tombstones) and push
    their slots on the free stack, in order; a slot holding no key is left alone."""
    mask = table.shape[0] - 1
    for q in range(cards.shape[0]):
        c = cards[q]
        if kmeta[c, 1] < 0:
            continue
        i = np.int64(khash[c] & _U(mask))
        while table[i] != _EMPTY and (table[i] & _LOW) != c:
            i = (i + 1) & mask
        if table[i] == _EMPTY:           # cannot happen (kmeta says it is in): never loop
            continue
        # close the gap: move back each later entry of the run whose home is not in (i, j]
        j = i
        while True:
            j = (j + 1) & mask
            e = table[j]
            if e == _EMPTY:
                break
            home = np.int64(khash[e & _LOW] & _U(mask))
            if (home <= i < j) or (i < j < home) or (j < home <= i):
                table[i] = e
                i = j
        table[i] = _EMPTY
        st[KLIVE] -= kmeta[c, 1]
        st[COUNT] -= 1
        kmeta[c, 1] = -1
        free[st[FREE]] = c
        st[FREE] += 1


@_jit
def _rehash(table, khash, kmeta):
    mask = table.shape[0] - 1
    for c in range(kmeta.shape[0]):
        if kmeta[c, 1] >= 0:
            h = khash[c]
            i = np.int64(h & _U(mask))
            while table[i] != _EMPTY:
                i = (i + 1) & mask
            table[i] = _tag(h) | c


@_jit
def _compact(kbuf, kmeta, new):
    used = 0
    for c in range(kmeta.shape[0]):
        n = kmeta[c, 1]
        if n >= 0:
            src = kmeta[c, 0]
            for b in range(n):
                new[used + b] = kbuf[src + b]
            kmeta[c, 0] = used
            used += n
    return used


@_jit
def _gather(cards, kbuf, kmeta, out, ends):
    at = 0
    for q in range(cards.shape[0]):
        c = cards[q]
        src = kmeta[c, 0]
        n = kmeta[c, 1]
        for b in range(n):
            out[at + b] = kbuf[src + b]
        at += n
        ends[q] = at


class FlatKeys:
    """n keys without an object each: key r is data[starts[r]:starts[r] + lens[r]] (uint8,
    int64, int64), as a record batch holds them (core.recordbatch) or flat_keys makes them."""

    __slots__ = ("data", "starts", "lens")

    def __init__(self, data: np.ndarray, starts: np.ndarray, lens: np.ndarray):
        self.data, self.starts, self.lens = data, starts, lens

    def __len__(self) -> int:
        return self.starts.shape[0]


def flat_keys(keys) -> FlatKeys:
    """The FlatKeys of a list of bytes keys (a FlatKeys as it is); TypeError for anything else
    (bytes.join's check, made before an index is touched)."""
    if isinstance(keys, FlatKeys):
        return keys
    if len(keys) == 1:   # the per-message facade (core.scorer): 1.2 us instead of 3.9
        return FlatKeys(np.frombuffer(keys[0], dtype=np.uint8), np.zeros(1, dtype=np.int64),
                        np.full(1, len(keys[0]), dtype=np.int64))
    data = np.frombuffer(b"".join(keys), dtype=np.uint8)
    lens = np.fromiter(map(len, keys), np.int64, len(keys))
    starts = np.zeros(len(keys), dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    return FlatKeys(data, starts, lens)


class CardIndex:
    """Card key -> card slot for `cards` slots (see the module docstring)."""

    def __init__(self, cards: int):
        k0, k1 = np.frombuffer(os.urandom(16), dtype=np.uint64)
        self._k0, self._k1 = _U(k0), _U(k1)
        self.st = np.zeros(4, dtype=np.int64)
        self.table = np.full(_MIN_TABLE, _EMPTY, dtype=np.int64)
        self.kbuf = np.empty(16 * cards, dtype=np.uint8)
        self.khash = np.zeros(0, dtype=np.uint64)
        self.kmeta = np.zeros((0, 2), dtype=np.int64)     # per slot: key offset in kbuf, length
        self.free = np.zeros(0, dtype=np.int64)
        self._seen = np.full(16, _EMPTY, dtype=np.int64)   # _lookup's scratch, kept empty
        self.grow_cards(cards)

    def __len__(self) -> int:
        return int(self.st[COUNT])

    @property
    def free_slots(self) -> int:
        return int(self.st[FREE])

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.table, self.kbuf, self.khash, self.kmeta, self.free, self._seen))

    def grow_cards(self, new: int) -> None:
        """Room for `new` card slots; the added ones go on top of the free stack, the lowest
        on top (as list.extend(range(new - 1, old - 1, -1)) did)."""
        old = self.khash.shape[0]
        if new >= 1 << 32:
            raise MemoryError(f"{new} card slots: a table entry holds a slot in 32 bits")
        self.khash = np.concatenate((self.khash, np.zeros(new - old, dtype=np.uint64)))
        meta = np.full((new, 2), -1, dtype=np.int64)
        meta[:old] = self.kmeta
        self.kmeta = meta
        top = self.free_slots
        free = np.empty(new, dtype=np.int64)
        free[:top] = self.free[:top]
        free[top:top + new - old] = np.arange(new - 1, old - 1, -1)
        self.free = free
        self.st[FREE] = top + new - old

    def lookup(self, keys: FlatKeys, grow_cards) -> np.ndarray:
        """The slot of every key, new keys given free slots in first-seen order; grow_cards(k)
        is called first when fewer than k are free."""
        data, starts, lens = keys.data, keys.starts, keys.lens
        n = starts.shape[0]
        hashes = self._hash(keys)
        ids = np.empty(n, dtype=np.int64)
        if self._seen.shape[0] < 2 * n:
            self._seen = np.full(1 << (2 * n).bit_length(), _EMPTY, dtype=np.int64)
        need, nbytes = _lookup(data, starts, lens, hashes, ids, self._seen, self.table, self.kmeta, self.kbuf)
        if need:
            if self.free_slots < need:
                grow_cards(need - self.free_slots)
            self._room(need, nbytes)
            _insert_new(data, starts, lens, hashes, ids, need, self.free, self.table, self.khash, self.kmeta,
                        self.kbuf, self.st)
        return ids

    def restore_ids(self, keys: FlatKeys, grow_cards) -> np.ndarray:
        """lookup() for a restore, where most keys are new: each entered as it comes, taking
        the next free slot (not in first-seen order of the batch: a restore's order is its own)."""
        data, starts, lens = keys.data, keys.starts, keys.lens
        n = starts.shape[0]
        if self.free_slots < n:
            grow_cards(n - self.free_slots)
        self._room(n, int(lens.sum()))
        ids = np.empty(n, dtype=np.int64)
        _restore_ids(data, starts, lens, self._hash(keys), ids, self.free, self.table, self.khash,
                     self.kmeta, self.kbuf, self.st)
        return ids

    def remove(self, cards: np.ndarray) -> None:
        """Forget the keys of these card slots and free the slots (in this order)."""
        if cards.shape[0]:
            _remove(np.ascontiguousarray(cards, dtype=np.int64), self.free, self.table, self.khash,
                    self.kmeta, self.st)

    def keys(self, cards: np.ndarray) -> list[bytes]:
        """The keys of these card slots (each holding one), as bytes."""
        cards = np.ascontiguousarray(cards, dtype=np.int64)
        ends = np.empty(cards.shape[0], dtype=np.int64)
        out = np.empty(int(self.kmeta[cards, 1].sum()), dtype=np.uint8)
        _gather(cards, self.kbuf, self.kmeta, out, ends)
        return pieces(out.tobytes(), ends)

    def as_dict(self) -> dict[bytes, int]:
        """Every key and its slot (O(cards): for tests and debugging)."""
        cards = (self.kmeta[:, 1] >= 0).nonzero()[0]
        return dict(zip(self.keys(cards), cards.tolist()))

    def _hash(self, keys: FlatKeys) -> np.ndarray:
        """SipHash-1-3 of every key under this index's secret (uint64)."""
        hashes = np.empty(len(keys), dtype=np.uint64)
        _hashes(keys.data, keys.starts, keys.lens, self._k0, self._k1, hashes)
        return hashes

    def _room(self, cards: int, nbytes: int) -> None:
        """Room in the table for `cards` more keys (at most half full) and `nbytes` in kbuf."""
        count = len(self)
        size = self.table.shape[0]
        if 2 * (count + cards) > size:
            while 2 * (count + cards) > size:
                size *= 2
            self.table = np.full(size, _EMPTY, dtype=np.int64)
            _rehash(self.table, self.khash, self.kmeta)
        used, live = int(self.st[KUSED]), int(self.st[KLIVE])
        if used + nbytes > self.kbuf.shape[0]:
            # live keys copied to the front; the buffer doubles when they would fill half of it
            size = max(self.kbuf.shape[0], 1024)
            while 2 * (live + nbytes) > size:
                size *= 2
            new = np.empty(size, dtype=np.uint8)
            self.st[KUSED] = _compact(self.kbuf, self.kmeta, new)
            self.kbuf = new
