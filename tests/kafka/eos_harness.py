"""Helpers of the exactly-once tests: input with known ids, the service as a real subprocess
(`python -m core`) or one ScoringConsumer in a thread, SIGKILL of its scoring processes, and
the read_committed verdict."""

from __future__ import annotations

import json
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from core.routing import H_REASON, H_SOURCE_OFFSET, H_SOURCE_PARTITION, H_SOURCE_TOPIC
from core.topics import TopicNames
from tests.kafka.kafka_io import read_all

REPO = Path(__file__).resolve().parents[2]
SEQ = "test-seq"


def namespace_of(names: TopicNames) -> str:
    return names.transactions.rsplit(".transactions", 1)[0]


@dataclass
class Inputs:
    """What was written to the input topic and what each record should become."""

    records: list[tuple[bytes | None, bytes | None, int]]  # (key, value, seq)
    valid_ids: list[str]
    hostile_seqs: set[int]
    hostile_coords: dict[tuple[int, int], bytes | None] = field(default_factory=dict)  # (p, off) -> value


def hostile_values(n: int, rng: random.Random) -> list[bytes | None]:
    """n bad inputs of many kinds; every non-empty one is unique."""
    out: list[bytes | None] = []
    for i in range(n):
        kind = i % 11
        tid = f"hostile-{i}"
        base = {"transaction_id": tid, "card_hash": "c", "amount": 10.0,
                "timestamp": "2026-01-01T00:00:00Z", "merchant_category": "grocery",
                **{f"V{k}": 0.1 for k in range(1, 29)}}
        if kind == 0:
            out.append(b"not json %d" % i)
        elif kind == 1:
            out.append(b"\xff\xfe\xfd invalid utf-8 %d" % i)
        elif kind == 2:
            del base["amount"]
            out.append(msgspec.json.encode(base))
        elif kind == 3:
            base["V7"] = "abc"
            out.append(msgspec.json.encode(base))
        elif kind == 4:
            base["timestamp"] = f"yesterday {i}"
            out.append(msgspec.json.encode(base))
        elif kind == 5:
            base["amount"] = -5.0
            out.append(msgspec.json.encode(base))
        elif kind == 6:
            out.append(b'{"transaction_id": "%d", ' % i + b"x" * rng.randint(1, 40))
        elif kind == 7:
            out.append(b"[%d, 1, 2]" % i)
        elif kind == 8:
            base["pad"] = "y" * 70_000
            out.append(msgspec.json.encode(base))
        elif kind == 10:   # msgspec's RecursionError once crash-looped the worker
            out.append(msgspec.json.encode(base)[:-1] + b',"deep":' + b"[" * (1000 + i) + b"]" * (1000 + i) + b"}")
        else:
            out.append(None if (i // 11) % 2 == 0 else b"")
    return out


def make_inputs(n_valid: int, n_hostile: int, seed: int, hostile: list[bytes | None] | None = None,
                **synth) -> Inputs:
    """Synthetic valid transactions (bench.load.synth.generate; `synth` overrides its
    keywords) with n_hostile bad values (default: hostile_values) inserted at random places."""
    from bench.load.synth import generate

    rng = random.Random(seed)
    batch = generate(n_valid, seed=seed, **{"fraud_rate": 0.01, **synth})
    payloads = batch.payloads()
    records: list[tuple[bytes | None, bytes | None, int]] = [
        (batch.card_hash[i].encode(), payloads[i], i) for i in range(n_valid)]
    if hostile is None:
        hostile = hostile_values(n_hostile, rng)
    seqs = set()
    for j, value in enumerate(hostile):
        pos = rng.randrange(len(records) + 1)
        seq = n_valid + j
        records.insert(pos, (b"card-%d" % j, value, seq))
        seqs.add(seq)
    return Inputs(records, [str(t) for t in batch.transaction_id], seqs)


def produce_inputs(bootstrap: str, topic: str, inputs: Inputs, records=None, *, tps: float | None = None,
                   partition: int | None = None, headers: tuple = (), gate: threading.Event | None = None) -> None:
    """Write records (default: all) to `topic`; remembers where each hostile one landed.

    partition: all to this one (default: by key); headers: added to each record's own;
    gate: send only while it is set (the `tps` schedule pauses with it)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True,
                         "message.max.bytes": 2_000_000})
    coords = inputs.hostile_coords
    errors: list[str] = []

    def on_hostile(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            coords[(msg.partition(), msg.offset())] = msg.value()

    start = time.monotonic()
    for i, (key, value, seq) in enumerate(records if records is not None else inputs.records):
        if gate is not None and not gate.is_set():
            paused = time.monotonic()
            producer.flush(60)   # what was sent before the pause lands before it
            gate.wait()
            start += time.monotonic() - paused
        if tps is not None:
            due = start + i / tps
            if due > time.monotonic():
                producer.poll(0)
                time.sleep(max(0.0, due - time.monotonic()))
        cb = on_hostile if seq in inputs.hostile_seqs else None
        while True:
            try:
                producer.produce(topic, value, key, -1 if partition is None else partition,
                                 headers=[(SEQ, str(seq).encode()), *headers], on_delivery=cb)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0, "input not delivered"
    assert not errors, errors


def produce_tracked(bootstrap: str, topic: str, records) -> dict[int, int]:
    """Write (key, value, seq) records keyed by card; returns seq -> the partition each went to."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True})
    where: dict[int, int] = {}
    errors: list[str] = []

    def landed(seq: int):
        def done(err, msg):
            if err is not None:
                errors.append(str(err))
            else:
                where[seq] = msg.partition()
        return done

    for key, value, seq in records:
        producer.produce(topic, value, key, headers=[(SEQ, str(seq).encode())], on_delivery=landed(seq))
        producer.poll(0)
    assert producer.flush(60) == 0 and not errors, errors
    return where


def one_error_line(svc: "Service") -> str:
    """The one `error:` line of a service that must stop at start-up: exit 1 within 120 s,
    no traceback, no worker restarted."""
    try:
        code = svc.proc.wait(timeout=120)
    finally:
        finish(None, svc)
    log = svc.log_path.read_text()
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1, svc.tail()
    assert "Traceback" not in log and "restarting" not in log, svc.tail()
    return errors[0]


class Service:
    """`python -m core` as a subprocess, output to a log file."""

    def __init__(self, bootstrap: str, names: TopicNames, group: str, log_dir: Path, *, workers: int = 6,
                 first_slot: int = 0, extra: tuple[str, ...] = (), tag: str = "svc", home: Path | None = None):
        self.log_path = log_dir / f"{tag}-{uuid.uuid4().hex[:6]}.log"
        self._log = open(self.log_path, "w")
        cmd = [sys.executable, "-m", "core", "--bootstrap", bootstrap, "--namespace", namespace_of(names),
               "--group", group, "--workers", str(workers), "--first-slot", str(first_slot),
               "--stats-interval", "2", *extra]
        env = None if home is None else {**os.environ, "FRAUDSTREAM_HOME": str(home)}   # another "host"
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.kills = 0
        self.kill_times: list[float] = []   # time.time() of each SIGKILL: the clock of records' CreateTime

    def worker_pids(self) -> list[int]:
        """Live scoring processes (spawned children; not the resource tracker)."""
        pids = []
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return []
        for pid in map(int, children):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                pids.append(pid)
        return pids

    def wait_workers(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.worker_pids()) < n:
            assert self.proc.poll() is None, f"service exited early:\n{self.tail()}"
            assert time.monotonic() < deadline, f"{n} workers not up in {timeout}s:\n{self.tail()}"
            time.sleep(0.1)

    def busy_pids(self) -> list[int]:
        """Live workers that have been assigned partitions (so a kill lands mid-work)."""
        text = self.log_path.read_text(errors="replace")
        assigned = {int(m) for m in re.findall(r"pid=(\d+) INFO \S+: assigned \[\d", text)}
        return [p for p in self.worker_pids() if p in assigned]

    def kill_random_worker(self, rng: random.Random, sig: int = signal.SIGKILL, *,
                           mid_work: bool = False, in_txn: bool = False) -> int | None:
        """Send `sig` to a random busy worker (SIGKILL counts in `kills`); its pid or None.

        With `mid_work`, prefer a worker that is on the CPU right now (its CPU time grew over
        the last 20 ms): one scoring and producing a batch, most likely inside a transaction,
        rather than one waiting in consume() between transactions.
        With `in_txn` (the service runs with FRAUDSTREAM_FAULTS=stall:1 or stall_acked:1), only a
        worker whose main thread sleeps in core.faults' stall now, inside a transaction whose
        outputs were produced (None if none does within 1 s): the only sleep of a worker's loop."""
        pids = self.busy_pids()
        if in_txn:
            pids = _stalled(pids)
        if not pids:
            return None
        if mid_work:
            before = {p: _cpu_ns(p) for p in pids}
            time.sleep(0.02)
            working = [p for p in pids if _cpu_ns(p) > before[p] >= 0]
            pids = working or pids
        pid = rng.choice(pids)
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return None
        if sig == signal.SIGKILL:
            self.kills += 1
            self.kill_times.append(time.time())
        return pid

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"service ignored SIGTERM for {timeout}s:\n{self.tail()}")
        finally:
            self._log.close()

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, *exc) -> None:
        # a test that failed midway still stops the service (its own stop() came first otherwise)
        if self.proc.poll() is None:
            self.stop()

    def tail(self, lines: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class InProcess:
    """One ScoringConsumer in a thread of this process (`scorer`: default Scorer.load()), its metrics
    and what it logged."""

    def __init__(self, bootstrap: str, names: TopicNames, group: str, *, scorer=None, **settings):
        from prometheus_client import CollectorRegistry

        from core.config import ScoringConfig
        from core.loop import ScoringConsumer
        from core.metrics import LoopMetrics
        from core.scorer import Scorer

        self.group = group
        config = ScoringConfig(bootstrap_servers=bootstrap, topics=names, group_id=group,
                               transactional_id_prefix=group, stats_interval_s=0, **settings)
        self.metrics = LoopMetrics(registry=CollectorRegistry())
        self.consumer = ScoringConsumer(config, scorer or Scorer.load(), metrics=self.metrics)
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        try:
            self.consumer.run()
        except BaseException as exc:  # noqa: BLE001 - asserted by the tests
            self.errors.append(exc)

    def wait_processed(self, n, timeout=60.0):
        deadline = time.monotonic() + timeout
        while self.metrics.snapshot().processed < n:
            assert time.monotonic() < deadline and self.thread.is_alive(), self.errors
            time.sleep(0.1)

    def stop(self):
        self.consumer.stop()
        self.thread.join(30)
        assert not self.thread.is_alive() and not self.errors, self.errors


def wait_first_commit(bootstrap: str, group: str, topic: str, service: Service, timeout: float = 120.0) -> None:
    """Wait until the group has committed an offset on some partition of `topic`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if any(o > 0 for o in committed_offsets(bootstrap, group, topic, range(6)).values()):
                return
        except KafkaException as exc:   # a broker just started: NOT_COORDINATOR while it loads the groups
            assert time.monotonic() < deadline, f"no commit within {timeout}s: {exc}\n{service.tail()}"
        assert time.monotonic() < deadline, f"no commit within {timeout}s:\n{service.tail()}"
        time.sleep(0.1)


# clock_nanosleep (Python's time.sleep), by the machine's system call numbers
_SLEEP_SYSCALL = {"x86_64": "230", "aarch64": "115", "arm64": "115"}.get(platform.machine(), "230")


def _stalled(pids: list[int], wait_s: float = 1.0) -> list[int]:
    """Those of `pids` blocked in clock_nanosleep (Python's time.sleep) at the first look that
    finds any, looking every 2 ms for up to wait_s; [] if none."""
    deadline = time.monotonic() + wait_s
    while True:
        found = [pid for pid in pids if _syscall(pid) == _SLEEP_SYSCALL]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.002)


def _syscall(pid: int) -> str:
    """The number of the system call the process's main thread is blocked in ('' if gone)."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split(" ", 1)[0]
    except OSError:
        return ""


def _cpu_ns(pid: int) -> int:
    """CPU time the process has used, in ns (-1 if it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1


def end_offsets(bootstrap: str, topic: str, attempts: int = 5) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe-" + uuid.uuid4().hex[:6]})
    try:
        for attempt in range(1, attempts + 1):
            try:
                parts = c.list_topics(topic, timeout=10).topics[topic].partitions
                return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
            except KafkaException as exc:   # once seen seconds after the topic was created
                if attempt == attempts:
                    raise
                print(f"end offsets of {topic}: {exc}; retrying")
                time.sleep(1.0)
    finally:
        c.close()


def committed_offsets(bootstrap: str, group: str, topic: str, parts) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed"})
    try:
        got = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def wait_drained(bootstrap: str, group: str, topic: str, *, timeout: float, service: Service | None = None,
                 stop_event: threading.Event | None = None) -> float:
    """Wait until the group's committed offsets reach the end of `topic`; returns when."""
    ends = end_offsets(bootstrap, topic)
    deadline = time.monotonic() + timeout
    while True:
        try:
            done = committed_offsets(bootstrap, group, topic, ends)
        except KafkaException as exc:   # a loaded broker can take over 10 s: ask again
            assert time.monotonic() < deadline, f"not drained in {timeout}s: {exc}"
            continue
        if all(end == 0 or done.get(p, -1) >= end for p, end in ends.items()):
            if stop_event is not None:
                stop_event.set()
            return time.monotonic()
        tail = service.tail() if service is not None else ""
        assert time.monotonic() < deadline, f"not drained in {timeout}s: committed {done}, end {ends}\n{tail}"
        if service is not None:
            assert service.proc.poll() is None, f"service exited with {service.proc.returncode}:\n{tail}"
        time.sleep(0.25)


@dataclass
class Verdict:
    sent_valid: int
    sent_hostile: int
    scored: int
    duplicates: int
    missing: int
    unexpected: int
    alerts: int
    alert_mismatch: int
    reasons_wrong: int  # alerts / flagged scored events without the same 1-3 reasons
    dead: int
    dead_duplicates: int
    dead_missing: int
    dead_wrong: int
    headers_lost: int
    mispaired: int = 0           # outputs whose key or sequence header is not their input's

    def exactly_once(self) -> bool:
        return not (self.duplicates or self.missing or self.unexpected or self.alert_mismatch
                    or self.dead_duplicates or self.dead_missing or self.dead_wrong or self.headers_lost
                    or self.mispaired or self.dead != self.sent_hostile)


def verify(bootstrap: str, names: TopicNames, inputs: Inputs) -> Verdict:
    """Read the three outputs read_committed and compare them with what was sent: each valid
    input scored once, under its own key and with its own sequence header; alerts exactly the
    flagged ones; each hostile input dead-lettered once."""
    valid = set(inputs.valid_ids)
    # transaction_id -> (key, sequence header) of the input it came from
    source = {inputs.valid_ids[seq]: (key, str(seq).encode())
              for key, _, seq in inputs.records if seq not in inputs.hostile_seqs}
    scores = read_all(bootstrap, names.scores, expect=len(valid), idle_s=2.0)
    alerts = read_all(bootstrap, names.alerts, idle_s=2.0)
    dead = read_all(bootstrap, names.deadletter, expect=len(inputs.hostile_seqs), idle_s=2.0)
    decode = msgspec.json.Decoder().decode
    counts: Counter[str] = Counter()
    fraud: set[str] = set()
    reasons: dict[str, list] = {}   # transaction_id -> reasons of its flagged scored event
    reasons_wrong = 0
    headers_lost = mispaired = 0
    for m in scores:
        event = decode(m.value())
        tid = event["transaction_id"]
        counts[tid] += 1
        if event["is_fraud"]:
            fraud.add(tid)
            reasons[tid] = event.get("reasons")
        elif "reasons" in event:
            reasons_wrong += 1
        seq = dict(m.headers() or ()).get(SEQ)
        if seq is None:
            headers_lost += 1
        if tid in source and source[tid] != (m.key(), seq if seq is not None else source[tid][1]):
            mispaired += 1
    alert_ids: Counter[str] = Counter()
    for m in alerts:
        alert = decode(m.value())
        tid = alert["transaction_id"]
        alert_ids[tid] += 1
        if tid in source and (m.key(), dict(m.headers() or ()).get(SEQ)) != source[tid]:
            mispaired += 1   # an alert carries its input's key and headers too
        got = alert.get("reasons")
        if (not got or len(got) > 3 or got != reasons.get(tid) or not alert.get("model_version")
                or any(set(r) != {"code", "value", "contribution", "text"} for r in got)):
            reasons_wrong += 1
    alert_mismatch = len(set(alert_ids) ^ fraud) + sum(c - 1 for c in alert_ids.values())
    dead_seen: Counter[tuple[int, int]] = Counter()
    dead_wrong = 0
    for m in dead:
        h = dict(m.headers() or ())
        coord = (int(h[H_SOURCE_PARTITION]), int(h[H_SOURCE_OFFSET]))
        dead_seen[coord] += 1
        if (h.get(H_SOURCE_TOPIC) != names.transactions.encode() or not h.get(H_REASON)
                or inputs.hostile_coords.get(coord, b"<none>") != m.value() or SEQ not in h):
            dead_wrong += 1
    return Verdict(
        sent_valid=len(valid), sent_hostile=len(inputs.hostile_seqs), scored=len(scores),
        duplicates=sum(c - 1 for c in counts.values() if c > 1),
        missing=len(valid - set(counts)), unexpected=len(set(counts) - valid),
        alerts=len(alerts), alert_mismatch=alert_mismatch, reasons_wrong=reasons_wrong,
        dead=len(dead),
        dead_duplicates=sum(c - 1 for c in dead_seen.values() if c > 1),
        dead_missing=len(set(inputs.hostile_coords) - set(dead_seen)),
        dead_wrong=dead_wrong, headers_lost=headers_lost, mispaired=mispaired)


def aborted_by_kills(bootstrap: str, names: TopicNames, kill_times: list[float],
                     window_s: float = 0.5) -> tuple[int, int]:
    """Records on fraud-scores that aborted transactions wrote (read_uncommitted, not
    read_committed): in all, and those produced in the `window_s` before a kill (their
    CreateTime), i.e. by the transactions the kills cut, not by aborts of other causes."""
    committed = {(m.partition(), m.offset()) for m in read_all(bootstrap, names.scores, idle_s=2.0)}
    aborted = [m.timestamp()[1] / 1000 for m in read_all(bootstrap, names.scores, idle_s=2.0, committed=False)
               if (m.partition(), m.offset()) not in committed]
    return len(aborted), sum(1 for t in aborted if any(k - window_s <= t <= k for k in kill_times))


def trickle(bootstrap: str, topic: str, inputs: Inputs, records, tps: float | None,
            gate: threading.Event | None = None) -> threading.Thread:
    """A thread (not yet started) that produces `records` to `topic` at `tps` (None: as fast as
    it can; while `gate` is set)."""
    return threading.Thread(target=produce_inputs, args=(bootstrap, topic, inputs, records),
                            kwargs={"tps": tps, "gate": gate})


def finish(tail: threading.Thread | None, *services: Service | None) -> None:
    """For a test's `finally`: let the input thread end, stop the services still running."""
    if tail is not None and tail.is_alive():
        tail.join()
    for svc in services:
        if svc is not None and svc.proc.poll() is None:
            svc.stop()


def thaw(pid: int | None) -> None:
    """For a test's `finally`: SIGCONT a worker it froze, if it is still there."""
    if pid is not None:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def free_port() -> int:
    """A TCP port free now on 127.0.0.1 (e.g. for --metrics-port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port: int) -> tuple[int, dict]:
    """The service's /healthz: (status, body); (0, {}) while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (urllib.error.URLError, ConnectionError):
        return 0, {}


def wait_health(port: int, svc: Service, want, timeout: float = 60.0) -> dict:
    """The first /healthz body for which want(status, body) holds, polled every 50 ms."""
    deadline = time.monotonic() + timeout
    while True:
        code, doc = healthz(port)
        if code and want(code, doc):
            return doc
        assert svc.proc.poll() is None, f"service exited:\n{svc.tail()}"
        assert time.monotonic() < deadline, f"/healthz never matched (last {code} {doc}):\n{svc.tail()}"
        time.sleep(0.05)


def drain_with_new_service(bootstrap: str, names: TopicNames, group: str, log_dir: Path, *, workers: int,
                           tag: str = "second", timeout: float = 180.0) -> None:
    """Start a service on the group, wait until it has committed to the end of the input,
    stop it (exit 0 asserted); stopped whatever happens."""
    svc = Service(bootstrap, names, group, log_dir, workers=workers, tag=tag)
    try:
        svc.wait_workers(workers)
        wait_drained(bootstrap, group, names.transactions, timeout=timeout, service=svc)
        assert svc.stop() == 0, svc.tail()
    finally:
        finish(None, svc)
