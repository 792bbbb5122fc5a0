"""core.cardindex: the card-key index, against a dict doing the same (hypothesis), with the real
hash and with hashes made to collide."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from core._siphash import siphash
from core.cardindex import CardIndex, flat_keys


class Colliding(CardIndex):
    """Every key hashes to one of two values: whole runs of equal hashes (and tags), so lookups
    rest on the byte comparison; the two homes are the table's last positions at any size, so
    probes and the backward shift wrap around."""

    def _hash(self, keys):
        return np.uint64(2**64 - 1) - (keys.lens % 2).astype(np.uint64)


class Model:
    """The index the way core.velocity kept it before: a dict and a free list."""

    def __init__(self, cards: int):
        self.slots: dict[bytes, int] = {}
        self.free = list(range(cards - 1, -1, -1))
        self.cards = cards

    def lookup(self, keys: list, cards: int) -> list[int]:
        """`cards`: how many slots the index has now (it grew when fewer were free than new keys)."""
        new = list(dict.fromkeys(k for k in keys if k not in self.slots))
        assert (cards > self.cards) == (len(self.free) < len(new))
        self.free.extend(range(cards - 1, self.cards - 1, -1))
        self.cards = cards
        taken = self.free[len(self.free) - len(new):]
        del self.free[len(self.free) - len(new):]
        self.slots.update(zip(new, taken))
        return [self.slots[k] for k in keys]


def grow(index: CardIndex, at_least: int) -> None:
    index.grow_cards(index.khash.shape[0] + max(at_least, 3))


_key = st.one_of(st.sampled_from([b"", b"a", b"ab", b"abc", b"abcdefgh", b"abcdefghi", b"\x00", b"a\x00"]),
                 st.binary(max_size=40))
_op = st.one_of(st.tuples(st.just("lookup"), st.lists(_key, max_size=60)),
                st.tuples(st.just("remove"), st.lists(st.integers(0, 10**6), max_size=30)))


@pytest.mark.parametrize("kind", [CardIndex, Colliding])
@settings(max_examples=150, deadline=None)
@given(ops=st.lists(_op, max_size=25))
def test_the_index_agrees_with_a_dict(kind, ops):
    index = kind(4)
    model = Model(4)
    for op, arg in ops:
        if op == "lookup":
            got = index.lookup(flat_keys(arg), lambda k: grow(index, k)).tolist()
            assert got == model.lookup(arg, index.khash.shape[0])
        else:   # remove some of the cards in it (picked by the numbers), in that order
            held = sorted(model.slots.items(), key=lambda kv: kv[1])
            gone = list(dict.fromkeys(held[i % len(held)] for i in arg)) if held else []
            index.remove(np.array([c for _, c in gone], dtype=np.int64))
            for key, c in gone:
                del model.slots[key]
                model.free.append(c)
        assert index.as_dict() == model.slots
        assert len(index) == len(model.slots)
        assert index.free[:index.free_slots].tolist() == model.free


@pytest.mark.parametrize("kind", [CardIndex, Colliding])
def test_removal_growth_and_compaction_keep_every_other_key(kind):
    index = kind(8)
    keys = [b"k%d" % i for i in range(3000)] + [b"", b"k", b"k1\x00"]   # prefixes of each other, empty
    ids = index.lookup(flat_keys(keys), lambda k: grow(index, k))
    assert len(set(ids.tolist())) == len(keys) and index.table.shape[0] >= 2 * len(keys)
    index.remove(ids[::2])                       # half the keys out: their bytes become garbage
    kept, gone = keys[1::2], keys[::2]
    assert index.as_dict() == dict(zip(kept, ids[1::2].tolist()))
    again = index.lookup(flat_keys(gone), lambda k: grow(index, k))   # reinserted: kbuf compacts
    assert sorted(again.tolist()) == sorted(ids[::2].tolist())        # the freed slots, reused
    assert index.lookup(flat_keys(kept), None).tolist() == ids[1::2].tolist()
    assert len(index) == len(keys)
    index.remove(again)
    index.remove(again[:5])                      # a slot holding no key: left alone
    assert len(index) == len(kept) and index.as_dict() == dict(zip(kept, ids[1::2].tolist()))


def test_restore_ids_enter_new_keys_in_row_order_and_find_known_ones():
    index = CardIndex(4)
    first = index.lookup(flat_keys([b"x", b"y"]), None).tolist()
    ids = index.restore_ids(flat_keys([b"y", b"a", b"b", b"a", b""]), lambda k: grow(index, k)).tolist()
    assert ids[0] == first[1] and ids[1] == ids[3] and len({ids[1], ids[2], ids[4]} | set(first)) == 5
    assert index.as_dict() == {b"x": first[0], b"y": first[1], b"a": ids[1], b"b": ids[2], b"": ids[4]}


def test_siphash_reference_vectors():
    # SipHash-2-4, key 00..0f, message 00..(n-1): the reference implementation's vectors
    key = (0x0706050403020100, 0x0F0E0D0C0B0A0908)
    buf = np.arange(64, dtype=np.uint8)
    assert siphash(buf, 0, 0, *key, 2, 4) == 0x726FDB47DD0E0E31
    assert siphash(buf, 0, 8, *key, 2, 4) == 0x93F5F5799A932462
    assert siphash(buf, 0, 15, *key, 2, 4) == 0xA129CA6149BE45E5
    # an offset into the buffer hashes the same bytes the same way
    assert siphash(np.concatenate((np.zeros(3, np.uint8), buf)), 3, 15, *key, 2, 4) == 0xA129CA6149BE45E5


def test_two_indexes_hash_under_different_secrets_and_agree_on_slots():
    a, b = CardIndex(16), CardIndex(16)
    keys = flat_keys([b"card-%d" % i for i in range(10)])
    assert not np.array_equal(a._hash(keys), b._hash(keys))
    assert a.lookup(keys, None).tolist() == b.lookup(keys, None).tolist()
