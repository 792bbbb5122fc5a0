"""Incremental snapshots + input replay (core.snapshot, core.cardstate), without Kafka: a store
restored from the changelog written up to a snapshot at offset S, then given the input records
S..X the way the replay gives them, is the store the undisturbed run had at X — the features
of every later record bit-identical, the live cards and the watermark equal — through
evictions, cards re-seen after eviction, bad clocks and dead letters."""

import json

import struct

import numpy as np
import pytest

from core.cardbatch import apply_input, batch_velocity
from core.decode import decode_batch
from core.snapshot import MARKER_KEY, Marker, decode_marker, encode_marker
from core.velocity import MAX_CARD_KEY_BYTES, CardStore, apply_bounded
from tests.core.test_velocity import _bits, _stream

H = 86400.0


def _live_cards(store: CardStore) -> dict:
    """The logical state: every card not idle 24 h before the watermark, with its record."""
    w = store.watermark
    return {key: value for key, value in _full(store) if np.frombuffer(value[1:9], "<f8")[0] >= w - H}, w


def _full(store: CardStore) -> list:
    was = store._changed.copy()
    store._changed[:] = (store.used != 0) & ~np.isnan(store.latest)   # cards holding events
    evicted, store._evicted = store._evicted, []
    try:
        return [(k, v) for k, v in store.changes() if v is not None]
    finally:
        store._changed[:] = was
        store._evicted = evicted


def _run(store, stream, lo, hi, size):
    keys, t, amount, mcc = stream
    return [store.apply(keys[i:min(i + size, hi)], t[i:min(i + size, hi)], amount[i:min(i + size, hi)],
                        mcc[i:min(i + size, hi)]) for i in range(lo, hi, size)]


@pytest.mark.parametrize("seed", [4, 5])
def test_snapshot_at_s_plus_replay_of_s_to_x_equals_the_undisturbed_store(seed):
    print(f"seed {seed}")
    stream = _stream(seed, 9000)
    n = len(stream[0])
    whole = np.concatenate(_run(CardStore(), stream, 0, n, 256))
    rng = np.random.default_rng(seed)
    # the writer: batches of 256, a snapshot (changes()) after some of them, as produce_changes
    # does when one is due; the changelog is everything written up to the last snapshot S
    writer = CardStore()
    changelog, s, out = [], 0, []
    for lo in range(0, 6000, 256):
        hi = min(lo + 256, 6000)
        out.extend(_run(writer, stream, lo, hi, 256))
        if hi < 5000 and rng.random() < 0.3:   # the last snapshot falls well before the kill
            changelog.extend(writer.changes())
            s = hi
    assert 0 < s < 6000, "a snapshot must fall before the kill point"
    assert any(v is None for _, v in changelog), "the stream must evict cards before S"
    x = 6000                                     # the committed offset at the kill
    restored = CardStore(cards=8, events=8)
    restored.restore(changelog)
    restored.discard_changes()
    _run(restored, stream, s, x, 97)             # the replay: another batch split
    assert restored.watermark == writer.watermark
    assert _live_cards(restored) == _live_cards(writer)
    # ... so everything after X is scored identically
    after = np.concatenate(out + _run(restored, stream, x, n, 333))
    np.testing.assert_array_equal(_bits(after), _bits(whole))
    # the test can fail: without the replay (the snapshot's state alone) later features differ
    stale = CardStore()
    stale.restore(changelog)
    assert not np.array_equal(_bits(np.concatenate(out + _run(stale, stream, x, n, 333))), _bits(whole))


def test_cards_evicted_and_seen_again_between_snapshot_and_kill():
    """A card tombstoned before S, seen again after S (known only through the replay), and a
    card whose last event was before S but is evicted during the replay."""
    t0 = 1_767_225_600.0
    keys = [b"gone", b"keep", b"gone", b"walker", b"walker", b"gone", b"keep"]
    t = np.array([t0, t0 + 10, t0 + 20, t0 + H + 100, t0 + 2 * H + 200, t0 + 2 * H + 300, t0 + 2 * H + 400])
    amount = np.arange(1, 8, dtype=np.float32)
    mcc = np.arange(7) % 3
    stream = (keys, t, amount, mcc)
    whole = CardStore().apply(keys, t, amount, mcc)
    for s in range(1, 7):
        writer = CardStore()
        writer.apply(keys[:s], t[:s], amount[:s], mcc[:s])
        restored = CardStore()
        restored.restore(writer.changes())
        got = np.concatenate([whole[:s]] + _run(restored, stream, s, 7, 1))
        np.testing.assert_array_equal(_bits(got), _bits(whole), err_msg=f"snapshot at {s}")


def _tx(i: int, card: str, amount: float, ts: str) -> bytes:
    row = {"transaction_id": f"t{i}", "card_hash": card, "amount": amount, "timestamp": ts,
           "merchant_category": f"m{i % 4}", **{f"V{k}": 0.0 for k in range(1, 29)}}
    return json.dumps(row).encode()


def test_apply_input_replays_the_live_path_dead_letters_included():
    rng = np.random.default_rng(11)
    print("seed 11")
    values, keys = [], []
    for i in range(600):
        card = f"c{rng.integers(0, 20)}"
        values.append(_tx(i, card, float(rng.choice([0.5, 12.0, 300.0])),
                          f"2026-01-01T{i // 60 % 24:02d}:{i % 60:02d}:{rng.integers(0, 60):02d}Z"))
        keys.append(card.encode())
    for j in range(0, 600, 37):   # dead letters: their rows must change no state
        values[j] = [b"not json", b"", _tx(j, "c1", -5.0, "2026-01-01T00:00:00Z"),
                     _tx(j, "c1", 3.0, "yesterday")][j % 4]
    live = CardStore()
    feats = []
    for lo in range(0, 600, 128):     # the scoring loop: decode, batch_velocity per batch
        part = values[lo:lo + 128]
        d = decode_batch(part)
        feats.append(batch_velocity({5: live}, np.full(len(part), 5, np.int64), keys[lo:lo + 128])(d, part))
    dead = len(values) - sum(f.shape[0] for f in feats)
    assert dead >= 12
    replayed = CardStore()
    applied = sum(apply_input(replayed, keys[lo:lo + 50], values[lo:lo + 50]) for lo in range(0, 600, 50))
    assert applied == 600 - dead
    assert _live_cards(replayed) == _live_cards(live)


def test_marker_round_trip_and_its_key_is_never_a_card():
    assert len(MARKER_KEY) == MAX_CARD_KEY_BYTES + 1
    value = encode_marker(123_456, 1.5e9)
    assert decode_marker(value) == Marker(123_456, 1.5e9)
    nan = decode_marker(encode_marker(0, float("nan")))
    assert nan.offset == 0 and np.isnan(nan.watermark)
    assert decode_marker(encode_marker(5, 1.5e9, 42)) == Marker(5, 1.5e9, 42)
    v1 = struct.pack("<Bqd", 1, 7, 1.5e9)                    # before `ahead` was recorded
    assert decode_marker(v1) == Marker(7, 1.5e9, 0)
    v2 = struct.pack("<Bqdq", 2, 7, 1.5e9, 3)                 # before partitions and model were
    assert decode_marker(v2) == Marker(7, 1.5e9, 3, 0, "")
    assert decode_marker(encode_marker(9, 1.5e9, 1, 6, "xgb-88358caaac2c")) == Marker(9, 1.5e9, 1, 6, "xgb-88358caaac2c")
    assert decode_marker(encode_marker(9, 1.5e9, 0, 6, "m" * 300)).model == "m" * 255
    for bad in (None, b"", value[:-1], b"\x04" + value[1:], b"\x02" + value[1:], encode_marker(-1, 0.0), encode_marker(1, float("inf")),
                encode_marker(1, 0.0, -1), b"\x01" + value[1:]):
        assert decode_marker(bad) is None, bad
    # a transaction keyed like the marker is scored as a card with no history, never kept
    store = CardStore()
    t = np.array([1e9, 1e9 + 1])
    out = apply_bounded(store, [MARKER_KEY, MARKER_KEY], t, np.ones(2, np.float32), np.zeros(2, np.int64))
    assert out[1, 4] == 1 and len(store) == 0 and store.changes() == []


def test_a_snapshot_inside_a_run_of_future_clocks_carries_the_run():
    """Traffic resumes after 3 days; the snapshot falls after 50 of the 100 transactions that
    move the watermark on. The marker's `ahead` restores the run, so the replay moves the
    watermark at the same transaction as the undisturbed store; without it, 50 more later."""
    from core._velocity_kernel import RESYNC_RUN

    rng = np.random.default_rng(12)
    n_before, n_after = 300, 400
    keys = [b"c%d" % k for k in rng.integers(0, 30, n_before + n_after)]
    t = np.concatenate([1_767_225_600.0 + np.arange(n_before) * 30.0,
                        1_767_225_600.0 + 3 * H + np.arange(n_after) * 30.0])
    amount = rng.lognormal(3, 1, n_before + n_after).astype(np.float32)
    mcc = rng.integers(0, 5, n_before + n_after)
    stream, n = (keys, t, amount, mcc), n_before + n_after
    whole = np.concatenate(_run(CardStore(), stream, 0, n, 64))
    s = n_before + RESYNC_RUN // 2
    writer = CardStore()
    _run(writer, stream, 0, s, 64)
    marker = decode_marker(encode_marker(s, writer.watermark, writer.ahead))
    assert marker.ahead == RESYNC_RUN // 2
    changelog = writer.changes()
    for carry in (True, False):
        restored = CardStore()
        restored.restore(changelog)
        assert restored.watermark == marker.watermark
        if carry:
            restored.ahead = marker.ahead       # what core.cardstate does after the check
        got = np.concatenate([whole[:s]] + _run(restored, stream, s, n, 41))
        assert np.array_equal(_bits(got), _bits(whole)) == carry


def test_partitions_snapshot_at_their_own_phase_of_the_interval():
    from core.cardstate import next_snapshot

    interval = 5.0
    for now in (0.0, 3.3, 1234.56):
        due = [next_snapshot(p, now, interval) for p in range(6)]
        assert all(now < d <= now + interval for d in due), due
        # one snapshot per partition per interval, and no two partitions within 1/20 of it
        phases = sorted(d % interval for d in due)
        gaps = np.diff(phases + [phases[0] + interval])
        assert gaps.min() > interval / 20, phases
        assert [next_snapshot(p, d, interval) for p, d in enumerate(due)] == [d + interval for d in due]
    assert next_snapshot(3, 10.0, 0.0) == 0.0      # 0: every transaction
