"""The `bench` record header: what the load generator stamps on every record it sends.

24 bytes, big-endian: intended send time (ns since the epoch), sequence number (producer
index << SEQ_BITS | n), run tag. The scorer carries input headers to its outputs unchanged,
so the latency sink reads the intended time and the sequence number back from each output.
"""

import struct

import numpy as np

__all__ = ["HEADER", "HEADER_DTYPE", "SEQ_BITS", "pack_header"]

HEADER = "bench"
HEADER_DTYPE = np.dtype([("t", ">i8"), ("seq", ">i8"), ("tag", ">u8")])
SEQ_BITS = 40
# pack_header(intended_ns, seq, tag) -> the `bench` header value, laid out as HEADER_DTYPE
pack_header = struct.Struct(">qqQ").pack
