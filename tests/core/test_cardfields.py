"""core.cardfields: event time and merchant read from the raw rows as core.velocity's own
helpers compute them; the `card` object's text gives back every float32 bit for bit."""

import json

import numpy as np
import pytest

from core import Scorer
from core.cardfields import card_json_names, card_objects, event_columns
from core.cardbatch import batch_velocity
from core.decode import decode_batch
from core.velocity import CardStore, VELOCITY_FEATURES, epoch_seconds, merchant_id
from tests.core.velocity_ref import stateless_model_path


def _tx(**fields) -> dict:
    base = {"transaction_id": "t", "card_hash": "c", "amount": 1.5,
            "timestamp": "2024-02-29T12:34:56.250Z", "merchant_category": "grocery"}
    base.update({f"V{i}": 0.0 for i in range(1, 29)})
    return {**base, **fields}


def test_event_columns_fast_and_msgspec_paths_agree_with_the_helpers():
    rows = [_tx(), _tx(timestamp="2026-01-01T00:00:00Z", merchant_category="caf\u00e9"),
            _tx(merchant_category="café", extra={"timestamp": "x", "merchant_category": "y"}),
            _tx(timestamp="1999-12-31T23:59:59.123456789Z", merchant_category="a\"b")]
    values = [json.dumps(rows[0], separators=(",", ":")).encode(),
              json.dumps(rows[1]).encode(),                       # escaped: the msgspec path
              json.dumps(rows[2], ensure_ascii=False).encode(),   # UTF-8 and a nested decoy
              json.dumps(rows[3], indent=1).encode()]
    t, mcc = event_columns(decode_batch(values))
    assert t.tolist() == [epoch_seconds(r["timestamp"]) for r in rows]
    assert mcc.tolist() == [merchant_id(r["merchant_category"]) for r in rows]


def test_card_text_round_trips_every_float32():
    rng = np.random.default_rng(7)
    print("seed 7")
    wide = rng.integers(0, 0x7F800000, 5000, dtype=np.uint32).view(np.float32)
    feats = np.resize(np.concatenate([wide, -wide[:100], [np.nan, 0.0, 1.0, 3.4e38, 1e-45]]),
                      (503, len(VELOCITY_FEATURES))).astype(np.float32)
    counts = [n.startswith("card_tx") or n in ("card_mcc_24h", "card_micro_10m", "card_mcc_10m",
                                               "card_micro_1m") for n in VELOCITY_FEATURES]
    feats[:, counts] = np.floor(np.abs(feats[:, counts]) % 1e6)
    buf, ends = card_objects(feats)
    for k in range(feats.shape[0]):
        text = bytes(buf[ends[k]:ends[k + 1]])
        card = json.loads(b"{" + text[1:] + b"}")["card"]
        assert list(card) == list(card_json_names())
        got = np.array([np.nan if v is None else v for v in card.values()], dtype=np.float32)
        np.testing.assert_array_equal(got.view(np.uint32), feats[k].view(np.uint32))


def test_an_amount_far_from_a_card_of_near_equal_amounts_keeps_the_card_object_json():
    # a deviation of 7e-31 makes z 1.4e39: infinite as a float32, whose text was a byte 0xff
    # and a garbage exponent in fraud-scores
    store = CardStore()
    t, amount, mcc = np.array([1e9, 1e9 + 1, 1e9 + 2]), np.array([0.0, 1e-30, 1e9], np.float32), np.ones(3)
    feats = np.concatenate([store.apply([b"x"], t[i:i + 1], amount[i:i + 1], mcc[i:i + 1]) for i in range(3)])
    z = VELOCITY_FEATURES.index("card_amount_z")
    assert feats[2, z] == np.finfo(np.float32).max
    buf, ends = card_objects(feats)
    card = json.loads(b"{" + bytes(buf[ends[2]:ends[3]])[1:] + b"}")["card"]
    assert np.float32(card["amount_z"]) == np.finfo(np.float32).max
    feats[2, z] = np.inf   # never computed now; JSON has no spelling for it
    buf, ends = card_objects(feats)
    assert json.loads(b"{" + bytes(buf[ends[2]:ends[3]])[1:] + b"}")["card"]["amount_z"] is None


@pytest.fixture(scope="module")
def scorer():
    return Scorer.load(stateless_model_path())


def test_scored_events_carry_the_card_object_they_were_scored_with(scorer):
    values = [json.dumps(_tx(transaction_id=f"t{i}", card_hash="c1", amount=0.5,
                             timestamp=f"2026-01-01T00:00:{i:02d}Z")).encode() for i in range(5)]
    values.insert(2, b"not json")
    stores = {0: CardStore()}
    keys = [b"c1"] * len(values)
    result = scorer.score_batch(values, batch_velocity(stores, np.zeros(len(values), np.int64), keys))
    assert [i for i, _ in result.dead] == [2]
    cards = [json.loads(v)["card"] for _, v in result.scored]
    assert [c["tx_1m"] for c in cards] == [1, 2, 3, 4, 5]
    assert [c["micro_10m"] for c in cards] == [1, 2, 3, 4, 5]
    assert cards[0]["secs_since_prev"] is None and cards[1]["secs_since_prev"] == 1.0
    assert all("card" not in json.loads(v) for _, v in scorer.score_batch(values).scored)


def test_rows_of_two_partitions_and_dead_rows_see_their_own_partitions_state(scorer):
    values = [json.dumps(_tx(transaction_id=f"t{i}", card_hash="c1", amount=2.0 + i,
                             timestamp=f"2026-01-01T00:00:{i:02d}Z")).encode() for i in range(8)]
    values[3] = b"{}"
    parts = np.array([0, 1, 0, 0, 1, 1, 0, 1], dtype=np.int64)
    keys = [b"c1"] * len(values)
    got = batch_velocity({0: CardStore(), 1: CardStore()}, parts, keys)(decode_batch(values), values)
    for p in (0, 1):
        rows = [i for i in range(8) if parts[i] == p and i != 3]
        alone = [values[i] for i in rows]
        want = batch_velocity({p: CardStore()}, np.full(len(alone), p), [b"c1"] * len(alone))(
            decode_batch(alone), alone)
        good = [k for k, i in enumerate(i for i in range(8) if i != 3) if parts[i] == p]
        np.testing.assert_array_equal(got[good].view(np.uint32), want.view(np.uint32))
    assert got[:, 0].tolist() == [1, 1, 2, 2, 3, 3, 4]


def _value_texts(text: bytes) -> list[bytes]:
    body = text[len(b',"card":{'):-1]
    return [item.split(b":", 1)[1] for item in body.split(b",")]


def test_a_value_repeated_in_a_row_is_written_as_if_alone():
    # the kernel copies the text of a sum equal (bit for bit) to the row's previous sum
    rng = np.random.default_rng(11)
    print("seed 11")
    feats = rng.lognormal(3, 2, (400, len(VELOCITY_FEATURES))).astype(np.float32)
    feats[1::4, 13] = feats[1::4, 7]
    feats[::2, 3] = feats[::2, 1]
    feats[::2, 5] = feats[::2, 1]
    feats[1::4, 7] = feats[1::4, 5]
    feats[2::4, 5] = -feats[2::4, 5]
    feats[3::8, 3] = np.nan
    feats[3::8, 1] = np.nan
    for k in range(feats.shape[0]):
        buf, ends = card_objects(feats[k:k + 1])
        texts = _value_texts(bytes(buf[ends[0]:ends[1]]))
        for j in range(len(VELOCITY_FEATURES)):
            alone = feats[k:k + 1].copy()
            alone[0, [i for i in (1, 3, 5, 6, 7, 13) if i != j]] = 0.5   # nothing equal before it
            alone[0, j] = feats[k, j]
            b2, e2 = card_objects(alone)
            assert texts[j] == _value_texts(bytes(b2[e2[0]:e2[1]]))[j], (k, j)
