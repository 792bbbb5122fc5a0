"""core.decode: the numba fast path agrees with msgspec, bad input becomes a precise reason."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.decode import decode_batch, decode_one, utc_hour
from core.features import AMOUNT, HOUR, N_V, empty_matrix
from core.schema import DEAD_KINDS, MAX_VALUE_BYTES, V_FIELDS, Transaction
from tests.core.strategies import mutations, raw_transactions, transactions

RAW_COLUMNS = list(range(N_V)) + [AMOUNT, HOUR]
SETTINGS = settings(deadline=None, max_examples=100,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def tx_dict(**overrides) -> dict:
    tx = {"transaction_id": "t1", "card_hash": "c1", "amount": 12.5,
          "timestamp": "2026-03-01T13:45:00.123Z", "merchant_category": "grocery"}
    tx.update({name: i / 10 for i, name in enumerate(V_FIELDS, 1)})
    tx.update(overrides)
    return {k: v for k, v in tx.items() if v is not _DROP}


_DROP = object()


def raw(**overrides) -> bytes:
    return json.dumps(tx_dict(**overrides), separators=(",", ":")).encode()


def expected_row(tx: dict) -> np.ndarray:
    row = np.array([tx[name] for name in V_FIELDS] + [tx["amount"], int(tx["timestamp"][11:13])],
                   dtype=np.float64)
    return row.astype(np.float32)


def test_a_plain_transaction_fills_the_raw_columns():
    d = decode_batch([raw()])
    assert d.dead == []
    assert d.good.tolist() == [0]
    np.testing.assert_array_equal(d.x[0, RAW_COLUMNS], expected_row(tx_dict()))
    assert d.x[0, HOUR] == 13


@SETTINGS
@given(st.lists(raw_transactions(), min_size=1, max_size=8))
def test_every_valid_spelling_decodes_to_the_same_features_as_msgspec(pairs):
    values = [value for _, value in pairs]
    d = decode_batch(values)
    assert d.dead == []
    assert d.good.tolist() == list(range(len(values)))
    for r, (tx, value) in enumerate(pairs):
        reference = empty_matrix(1)
        assert isinstance(decode_one(value, reference[0]), Transaction)
        # the fast path parses numbers to within one double ulp: at most 1 float32 ulp apart
        np.testing.assert_array_max_ulp(d.x[r, RAW_COLUMNS], reference[0, RAW_COLUMNS], 1)
        np.testing.assert_array_max_ulp(d.x[r, RAW_COLUMNS], expected_row(tx), 1)
        # the final brace the encoder splices before
        assert d.buf[d.close[r]] == ord("}")
        assert value[d.close[r] - d.starts[r] + 1:].strip() == b""


def test_short_decimals_are_exact():
    values = [raw(amount=a, V3=v) for a, v in [(0.01, -1.234567), (4999.99, 0.000001),
                                              (100, 1e-5), (1e6, 123456.789012)]]
    d = decode_batch(values)
    for r, value in enumerate(values):
        tx = json.loads(value)
        np.testing.assert_array_equal(d.x[r, RAW_COLUMNS], expected_row(tx))


@pytest.mark.parametrize("value, reason", [
    (b"", "invalid JSON: empty value"),
    (None, "invalid JSON: empty value (null record)"),
    (b"not json", "invalid JSON: invalid character at byte"),
    (b'{"amount": 1', "invalid JSON: truncated after 12 bytes"),
    (b'{"transaction_id":"\xff"}', "invalid UTF-8: byte 19"),
    (raw()[:-1] + b',"\x80synthetic_label":0}', "invalid UTF-8: byte "),  # unknown key
    (raw(extra=1)[:-1] + b',"x":"\xc0\xaf"}', "invalid UTF-8: byte "),  # overlong, unknown
    (raw()[:-1] + b',"x":{"a":["\xed\xa0\x80"]}}', "invalid UTF-8: byte "),  # surrogate, nested
    (raw()[:-1] + b',"x":"\xf4\x90\x80\x80"}', "invalid UTF-8: byte "),  # above U+10FFFF
    (b'\xef\xbb\xbf' + raw(), "invalid JSON: invalid character at byte 0"),  # a BOM
    (raw().replace(b'"amount":12.5', b'"amount":1,"amount":12.5'),
     "duplicate field: `amount` appears more than once"),
    (raw().replace(b'"V28":2.8', b'"V28":2.8, "V3" :0.3'),
     "duplicate field: `V3` appears more than once"),
    (raw().replace(b'"card_hash"', b'"x":{"card_hash":"a","y":["\\"",{}]},"card_hash"')
     .replace(b'"V1"', b'"\\u0063ard_hash":"b","V1"'), "duplicate field: `card_hash` appears"),
    (b"[1, 2]", "not a JSON object: got array"),
    (b'"text"', "not a JSON object: got str"),
    (raw(amount=_DROP), "missing field: `amount`"),
    (raw(V7="1.5"), "wrong type: `V7` expected float, got str"),
    (raw(V7=None), "wrong type: `V7` expected float, got null"),
    (raw(amount=True), "wrong type: `amount` expected float, got bool"),
    (raw(transaction_id=17), "wrong type: `transaction_id` expected str, got int"),
    (raw(transaction_id=""), "out of range: `transaction_id` expected str of length >= 1"),
    (raw(_synthetic_label=0.5), "wrong type: `_synthetic_label` expected int | null, got float"),
    (raw().replace(b'"V7":0.7', b'"V7":1e400'), "non-finite number: `V7` number out of range"),
    (raw(V2=1e39), "non-finite number: `V2` 1e+39 overflows float32"),
    (raw(amount=-0.01), "out of range: `amount` -0.01 not in [0, 1e+09]"),
    (raw(amount=2e9), "out of range: `amount` 2000000000.0 not in [0, 1e+09]"),
    (raw().replace(b'"V7":0.7', b'"V7":NaN'), "invalid JSON: invalid character at byte"),
    (raw(fraud_score=0.1), "reserved field: `fraud_score` is written by the scorer"),
    (raw(model_version="x"), "reserved field: `model_version` is written by the scorer"),
    (raw(reasons=[]), "reserved field: `reasons` is written by the scorer"),
    (raw(card={}), "reserved field: `card` is written by the scorer"),
    (raw(risk_level="LOW"), "reserved field: `risk_level` is written by the scorer"),
    (raw(timestamp="2026-03-01T13:45:00+00:00"), "bad timestamp: `timestamp` '2026-03-01T13"),
    (raw(timestamp="2026-03-01 13:45:00Z"), "bad timestamp:"),
    (raw(timestamp="2026-02-30T13:45:00Z"), "bad timestamp: `timestamp` '2026-02-30T13:45:00Z': "
                                             "day is out of range for month"),
    (raw(timestamp="2026-03-01T24:00:00Z"), "bad timestamp:"),
    (raw(timestamp="2026-03-01T13:45:00.1234567890Z"), "bad timestamp:"),
    (raw(timestamp=1700000000), "wrong type: `timestamp` expected str, got int"),
    (b" " * (MAX_VALUE_BYTES + 1), f"value too large: {MAX_VALUE_BYTES + 1} bytes > "
                                   f"{MAX_VALUE_BYTES}"),
    (raw() + b" x", "invalid JSON: trailing characters at byte"),
    # msgspec's recursion would raise RecursionError near 1000 levels (a crash loop before)
    (raw()[:-1] + b',"x":' + b"[" * 1000 + b"]" * 1000 + b"}", "invalid JSON: nested deeper than 64 levels"),
    (raw()[:-1] + b',"x":' + b"[" * 64 + b"]" * 64 + b"}", "invalid JSON: nested deeper than 64 levels"),
    (b"[" * 5000, "invalid JSON: nested deeper than 64 levels"),   # deep and not even closed
])
def test_bad_values_get_a_precise_reason_and_spare_their_neighbours(value, reason):
    good = raw()
    d = decode_batch([good, value, good])
    assert d.good.tolist() == [0, 2]
    assert len(d.dead) == 1
    index, got = d.dead[0]
    assert index == 1
    assert got.startswith(reason), got
    assert got.split(":")[0] in DEAD_KINDS
    assert decode_one(value) == got   # alone or in a batch: the same judgement


@pytest.mark.parametrize("timestamp, hour", [
    ("2024-02-29T23:59:59Z", 23), ("2000-01-01T00:00:00.5Z", 0), ("0001-01-01T05:00:00Z", 5),
    ("9999-12-31T12:30:00.123456789Z", 12),
])
def test_utc_hour_accepts_iso_utc(timestamp, hour):
    assert utc_hour(timestamp) == hour
    d = decode_batch([raw(timestamp=timestamp)])
    assert d.dead == [] and d.x[0, HOUR] == hour


@pytest.mark.parametrize("timestamp", [
    "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "0000-01-01T00:00:00Z",
    "2026-13-01T00:00:00Z", "2026-01-01T00:60:00Z", "2026-01-01T00:00:60Z",
    "2026-01-01T00:00:00z", "2026-01-01t00:00:00Z", "2026-01-01T00:00:00.Z",
    "2026-01-01T00:00:00", "2026-01-01", "２０２６-01-01T00:00:00Z",
])
def test_timestamps_that_are_not_iso_utc_are_dead(timestamp):
    assert isinstance(utc_hour(timestamp), str)
    d = decode_batch([raw(timestamp=timestamp)])
    assert d.good.size == 0
    assert d.dead[0][1].startswith("bad timestamp:")


@pytest.mark.parametrize("value", [
    raw().replace(b'"V1"', b'"\\u0056\\u0031"'),  # escaped key
    raw(merchant_category="café"),  # non-ASCII string
    raw(extra={"nested": [1, 2, {"a": None}]}),  # nested unknown field
    raw(amount=5, V1=1.5e-30),  # magnitudes the kernel leaves to msgspec
    raw(extra={"a": 1, "b": {"amount": 2}}).replace(b'"b"', b'"a"'),  # unknown field twice
])
def test_values_the_kernel_declines_still_decode_via_msgspec(value):
    d = decode_batch([value])
    assert d.dead == []
    tx = json.loads(value)
    np.testing.assert_array_max_ulp(d.x[0, RAW_COLUMNS], expected_row(tx), 1)


def test_nesting_up_to_64_levels_decodes_and_brackets_in_strings_do_not_count():
    deepest = raw()[:-1] + b',"x":' + b'{"y":' * 62 + b"[]" + b"}" * 62 + b"}"   # 64 levels
    quoted = raw()[:-1] + b',"x":"' + b"[{" * 100 + b'\\\"[[["}'   # brackets and escapes in a string
    d = decode_batch([deepest, quoted])
    assert d.good.tolist() == [0, 1] and not d.dead
    assert not isinstance(decode_one(deepest), str) and not isinstance(decode_one(quoted), str)


def test_an_escaped_key_beside_a_number_of_thousands_of_digits_decodes():
    # the duplicate check of an escaped key parses the object with json, whose int conversion
    # refuses over 4,300 digits (a ValueError, a crash loop before)
    value = raw()[:-1] + b',"n\\u006fte":' + b"9" * 5000 + b"}"
    assert not isinstance(decode_one(value), str)
    d = decode_batch([value, raw()])
    assert d.good.tolist() == [0, 1]


def test_a_value_no_rule_foresaw_is_a_dead_letter_naming_the_error(monkeypatch, caplog):
    import core.decode as decode

    class Broken:
        def decode(self, value):
            raise RuntimeError("no rule for this")

    monkeypatch.setattr(decode, "_DECODER", Broken())
    odd = raw(V7="odd")   # not the kernel's: decoded by the (broken) slow path
    d = decode_batch([raw(), odd, raw()])
    assert d.good.tolist() == [0, 2]
    assert d.dead == [(1, "invalid JSON: cannot be decoded (RuntimeError)")]
    assert "no rule for this" in caplog.text and "please report" in caplog.text


def test_unknown_fields_and_null_label_are_accepted():
    d = decode_batch([raw(_synthetic_label=None, schema_v=2, flag=True, other=False, n=None)])
    assert d.dead == [] and d.good.tolist() == [0]


@SETTINGS
@given(st.lists(st.binary(max_size=64), max_size=6))
def test_any_bytes_decode_or_die_never_raise(values):
    d = decode_batch(values)
    dead = [i for i, _ in d.dead]
    assert sorted(d.good.tolist() + dead) == list(range(len(values)))
    assert all(reason.split(":")[0] in DEAD_KINDS for _, reason in d.dead)


@SETTINGS
@given(st.data())
def test_whatever_decodes_is_strict_utf8_json(data):
    # the scorer carries a good row's bytes into fraud-scores: they must be valid JSON there
    _, value = data.draw(raw_transactions())
    at = data.draw(st.integers(0, len(value) - 1))
    values = [value[:at] + data.draw(st.binary(min_size=1, max_size=4)) + value[at:],
              value[:-1] + b',"' + data.draw(st.binary(max_size=6)) + b'":0}']
    d = decode_batch(values)
    for r in d.good.tolist():
        json.loads(values[r].decode("utf-8"))


@SETTINGS
@given(st.data())
def test_mutated_transactions_decode_like_msgspec_or_die_precisely(data):
    _, value = data.draw(raw_transactions(extras=False))
    values = [data.draw(mutations(value)) for _ in range(3)]
    d = decode_batch(values)
    dead = dict(d.dead)
    for r, v in enumerate(values):
        reference = empty_matrix(1)
        result = decode_one(v, reference[0])
        if isinstance(result, str):
            assert dead[r] == result
        else:
            assert r in d.good.tolist()
            np.testing.assert_array_max_ulp(d.x[r, RAW_COLUMNS], reference[0, RAW_COLUMNS], 1)


@SETTINGS
@given(transactions())
def test_decoded_transaction_equals_the_input(tx):
    value = json.dumps(tx).encode()
    decoded = decode_one(value)
    assert isinstance(decoded, Transaction)
    for name in Transaction.__struct_fields__:
        key = "_synthetic_label" if name == "synthetic_label" else name
        assert getattr(decoded, name) == tx.get(key)


def test_size_limit_is_inclusive():
    value = raw()
    at_limit = value + b" " * (MAX_VALUE_BYTES - len(value))
    d = decode_batch([at_limit, at_limit + b" "])
    assert d.good.tolist() == [0]
    assert d.dead == [(1, f"value too large: {MAX_VALUE_BYTES + 1} bytes > {MAX_VALUE_BYTES}")]


@pytest.mark.parametrize("number", [
    b"0", b"-0", b"0.5", b"-0.0", b"7", b"-7.25", b"10", b"-123456.789012", b"1e3", b"-2.5E-3",
    b"0.000000000000000000001234", b"12345678901234567890123", b"-", b"-.5", b".5", b"00",
    b"-01", b"01.5", b"1.", b"1.e3", b"1e", b"--1", b"+1", b"0x10", b"1.5.2",
    b"1234567.1234567", b"-9999999.9999999", b"12345678.5", b"1.12345678", b"-0.5e2", b"5E+1",
    b"7.25e", b"0.0000001", b"3.1-", b"12:", b"9.",
])
def test_number_spellings_decode_like_msgspec_or_die_alike(number):
    assert_decodes_like_msgspec(raw().replace(b'"V3":0.3', b'"V3":' + number))


def assert_decodes_like_msgspec(value: bytes) -> None:
    """The batch decoder gives msgspec's features, or msgspec's dead-letter reason."""
    d = decode_batch([value])
    reference = empty_matrix(1)
    result = decode_one(value, reference[0])
    if isinstance(result, str):
        assert d.dead == [(0, result)]
    else:
        assert d.dead == []
        np.testing.assert_array_max_ulp(d.x[0, RAW_COLUMNS], reference[0, RAW_COLUMNS], 1)


@pytest.mark.parametrize("old, new, twice", [
    (b'"V3":0.3,', b'"V3":0.3,"V3":9.5,', "V3"),  # a repeat where the next key is expected
    (b'"V3":0.3,', b'"V3":0.3,"V5":9.5,', "V5"),  # out of the usual order, then a duplicate V5
    (b'"V3":0.3,"V4"', b'"V3":0.3 , "V4"', None),  # spacing around the usual next key
    (b'"V3":0.3,"V4"', b'"V3":0.3,"V4" ', None),
])
def test_the_usual_key_order_shortcut_still_sees_duplicates_and_spacing(old, new, twice):
    value = raw().replace(old, new)
    assert value != raw()
    d = decode_batch([value])
    if twice:
        assert d.dead == [(0, f"duplicate field: `{twice}` appears more than once")]
        return
    assert d.dead == []
    np.testing.assert_array_max_ulp(d.x[0, RAW_COLUMNS], expected_row(json.loads(value)), 1)


@pytest.mark.parametrize("text", [
    b"", b"a", b"abcdefg", b"abcdefgh", b"abcdefghi", b"x" * 40, b"tab\there", b"nl\nx",
    b"abcdefg\\\"x", b"abcdefgh\\u0041", b"caf\xc3\xa9 au lait", b"\x7f-del-is-fine-here",
    b"\x1fabcdefgh", b"abcdefgh\x00",
])
def test_string_scanning_8_bytes_at_a_time_agrees_with_msgspec(text):
    assert_decodes_like_msgspec(
        raw().replace(b'"merchant_category":"grocery"', b'"merchant_category":"' + text + b'"'))
