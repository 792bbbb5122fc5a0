"""SipHash-c-d (Aumasson & Bernstein, 2012) in numba, for core.cardindex: the keyed hash
Python itself uses for bytes (SipHash-1-3 since 3.11), so card keys chosen by a sender cannot
be made to collide without the index's secret. Checked against the reference vectors of
SipHash-2-4 (tests/core/test_cardindex.py); the index runs 1-3, the same code."""

import numba as nb
import numpy as np

__all__ = ["siphash", "siphash_inline"]

_inline = nb.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy", inline="always")
_U = np.uint64


@_inline
def _rotl(x, b):
    return (x << _U(b)) | (x >> _U(64 - b))


@_inline
def _round(v0, v1, v2, v3):
    v0 += v1
    v1 = _rotl(v1, 13)
    v1 ^= v0
    v0 = _rotl(v0, 32)
    v2 += v3
    v3 = _rotl(v3, 16)
    v3 ^= v2
    v0 += v3
    v3 = _rotl(v3, 21)
    v3 ^= v0
    v2 += v1
    v1 = _rotl(v1, 17)
    v1 ^= v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


@_inline
def siphash_inline(buf, pos, n, k0, k1, c_rounds, d_rounds):
    """SipHash-c-d (Aumasson & Bernstein) of buf[pos:pos + n] under the key (k0, k1)."""
    v0 = k0 ^ _U(0x736F6D6570736575)
    v1 = k1 ^ _U(0x646F72616E646F6D)
    v2 = k0 ^ _U(0x6C7967656E657261)
    v3 = k1 ^ _U(0x7465646279746573)
    end = pos + n - (n % 8)
    p = pos
    while p < end:
        m = _U(0)
        for b in range(8):
            m |= _U(buf[p + b]) << _U(8 * b)
        v3 ^= m
        for _ in range(c_rounds):
            v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0 ^= m
        p += 8
    m = _U(n & 0xFF) << _U(56)
    for b in range(n % 8):
        m |= _U(buf[p + b]) << _U(8 * b)
    v3 ^= m
    for _ in range(c_rounds):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    v0 ^= m
    v2 ^= _U(0xFF)
    for _ in range(d_rounds):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3

@nb.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def siphash(buf, pos, n, k0, k1, c_rounds, d_rounds):
    """SipHash-c-d of buf[pos:pos + n] (uint8) under the 128-bit key (k0, k1), as uint64."""
    return siphash_inline(buf, pos, n, _U(k0), _U(k1), c_rounds, d_rounds)
