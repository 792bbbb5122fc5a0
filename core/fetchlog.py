"""A minimal Kafka Fetch client for reading one partition read_committed, fast (the restore).

librdkafka (confluent-kafka) hands every record to Python as a Message plus a key and a value
bytes object: 300-600k records/s on one core, too slow to restore a million cards in a second.
This client speaks just enough of the Kafka protocol, over one plain TCP connection to the
partition's leader, to get the raw record batches, which core.recordbatch parses into flat
arrays with no Python object per record:

- ApiVersions (v0) picks the highest Fetch version both sides know among 4..11 (the versions
  with isolation_level and without the flexible encoding; Kafka 4 removed 0..3);
- Fetch with isolation_level 1 (read_committed), one partition, 16 MB at most per response;
  the next request is sent before the current response is parsed, so the broker reads the
  log while we parse; `read_ahead` receives, decompresses and parses in a thread of its own
  (socket reads, lz4 and the numba parser release the GIL) while the caller indexes the keys
  of the chunk before.

Only PLAINTEXT: the caller (core.partreader) uses librdkafka for anything else, and on any
FetchError goes on with librdkafka from the last offset this client returned.
"""

from __future__ import annotations

import queue
import socket
import struct
import threading
from typing import Iterator

from core.recordbatch import Malformed, Records, parse_records

__all__ = ["FetchError", "PartitionFetcher"]

_API_FETCH, _API_VERSIONS = 1, 18
_FETCH_VERSIONS = range(4, 12)
_MAX_BYTES = 16 << 20
_MAX_WAIT_MS = 100
_EMPTY_LIMIT = 600        # empty responses in a row (x 100 ms max wait) before giving up
_CLIENT_ID = b"fraudstream-restore"


class FetchError(Exception):
    """This client cannot go on (protocol, version, codec, broker error): use librdkafka."""


class _Reader:
    """Big-endian fields of one response, in order."""

    def __init__(self, data: memoryview):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        s = struct.Struct(">" + fmt)
        values = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return values if len(values) > 1 else values[0]

    def string(self) -> bytes | None:
        n = self.take("h")
        if n < 0:
            return None
        self.pos += n
        return bytes(self.data[self.pos - n:self.pos])

    def blob(self) -> memoryview | None:
        n = self.take("i")
        if n < 0:
            return None
        self.pos += n
        return self.data[self.pos - n:self.pos]


class PartitionFetcher:
    """One partition read_committed from its leader at (host, port)."""

    def __init__(self, host: str, port: int, topic: str, partition: int, timeout: float = 30.0):
        self.topic, self.partition = topic, partition
        self._topic = topic.encode()
        self._corr = 0
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.version = self._fetch_version()
        except OSError as exc:
            self.close()
            raise FetchError(f"connecting to {host}:{port}: {exc}") from None

    def close(self) -> None:
        sock, self._sock = getattr(self, "_sock", None), None
        if sock is not None:
            try:   # wakes a receive blocked in read_ahead's thread, which close alone may not
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    # -- the wire ----------------------------------------------------------------------------

    def _send(self, api: int, version: int, body: bytes) -> int:
        self._corr += 1
        header = struct.pack(">hhih", api, version, self._corr, len(_CLIENT_ID)) + _CLIENT_ID
        self._sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        return self._corr

    def _receive(self, corr: int) -> _Reader:
        size = struct.unpack(">i", self._exactly(4))[0]
        data = memoryview(self._exactly(size))
        if struct.unpack_from(">i", data)[0] != corr:
            raise FetchError("a response to another request (correlation id)")
        r = _Reader(data)
        r.pos = 4
        return r

    def _exactly(self, n: int) -> bytearray:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self._sock.recv_into(view[got:], n - got)
            if k == 0:
                raise FetchError("the broker closed the connection")
            got += k
        return buf

    def _fetch_version(self) -> int:
        r = self._receive(self._send(_API_VERSIONS, 0, b""))
        error = r.take("h")
        if error:
            raise FetchError(f"ApiVersions error {error}")
        for _ in range(r.take("i")):
            api, low, high = r.take("hhh")
            if api == _API_FETCH:
                both = [v for v in _FETCH_VERSIONS if low <= v <= high]
                if both:
                    return max(both)
                raise FetchError(f"the broker's Fetch versions {low}..{high} are not 4..11")
        raise FetchError("the broker does not list Fetch")

    def _request(self, offset: int) -> bytes:
        v = self.version
        body = struct.pack(">iiiib", -1, _MAX_WAIT_MS, 1, _MAX_BYTES, 1)   # read_committed
        if v >= 7:
            body += struct.pack(">ii", 0, -1)                # no fetch session
        body += struct.pack(">ih", 1, len(self._topic)) + self._topic
        body += struct.pack(">ii", 1, self.partition)
        if v >= 9:
            body += struct.pack(">i", -1)                    # current leader epoch: unknown
        body += struct.pack(">q", offset)
        if v >= 5:
            body += struct.pack(">q", -1)                    # log start offset (followers only)
        body += struct.pack(">i", _MAX_BYTES)
        if v >= 7:
            body += struct.pack(">i", 0)                     # forgotten topics
        if v >= 11:
            body += struct.pack(">h", 0)                     # rack id ""
        return body

    def _response(self, corr: int) -> tuple[memoryview, list, int]:
        """(record set, aborted transactions, last stable offset) of the partition."""
        v = self.version
        r = self._receive(corr)
        r.take("i")                                          # throttle time
        if v >= 7:
            error, _ = r.take("hi")
            if error:
                raise FetchError(f"Fetch error code {error}")
        records, aborted, stable = None, [], -1
        for _ in range(r.take("i")):
            r.string()
            for _ in range(r.take("i")):
                partition, error, _high, stable = r.take("ihqq")
                if v >= 5:
                    r.take("q")
                n = r.take("i")
                aborted = [r.take("qq") for _ in range(max(n, 0))]
                if v >= 11:
                    r.take("i")
                records = r.blob()
                if partition != self.partition:
                    continue
                if error:
                    raise FetchError(f"Fetch error code {error} for {self.topic}[{partition}]")
        if records is None:
            raise FetchError(f"no data for {self.topic}[{self.partition}] in the Fetch response")
        return records, aborted, stable

    # -- reading -----------------------------------------------------------------------------

    def read(self, start: int, end: int) -> Iterator[Records]:
        """The committed records with start <= offset < end, in chunks (one per response).
        Raises FetchError; what it yielded before is right and complete up to its position."""
        position, empty = start, 0
        corr = self._send(_API_FETCH, self.version, self._request(position))
        try:
            while position < end:
                raw, aborted, stable = self._response(corr)
                try:
                    chunk = parse_records(raw, position, end, aborted)
                except Malformed as exc:
                    raise FetchError(f"{self.topic}[{self.partition}]@{position}: {exc}") from None
                if chunk.unreadable:   # what it could read, then librdkafka from its position
                    if chunk.position > position:
                        yield chunk
                    raise FetchError(f"{self.topic}[{self.partition}]@{chunk.position}: {chunk.unreadable}")
                if chunk.position < end:   # ask for the next while this one is applied
                    corr = self._send(_API_FETCH, self.version, self._request(chunk.position))
                if chunk.position == position:
                    empty += 1
                    if position < stable or empty > _EMPTY_LIMIT:
                        raise FetchError(f"{self.topic}[{self.partition}]: no progress at offset {position} "
                                         f"(last stable offset {stable})")
                    continue
                empty, position = 0, chunk.position
                yield chunk
        except (OSError, struct.error, AttributeError) as exc:   # AttributeError: closed meanwhile
            raise FetchError(f"{self.topic}[{self.partition}]@{position}: {exc}") from None

    def read_ahead(self, start: int, end: int, depth: int = 2) -> Iterator[Records]:
        """read() in a thread, up to `depth` chunks ahead of the caller."""
        chunks: queue.Queue = queue.Queue(depth)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    chunks.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def run() -> None:
            try:
                for chunk in self.read(start, end):
                    if not put(chunk):
                        return
                put(None)
            except BaseException as exc:   # handed to the caller's thread, raised there
                put(exc)

        thread = threading.Thread(target=run, name=f"fetchlog-{self.topic}[{self.partition}]", daemon=True)
        thread.start()
        try:
            while True:
                item = chunks.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            if thread.is_alive():   # unblock a pending receive, then wait for the thread
                self.close()
                thread.join(10.0)
