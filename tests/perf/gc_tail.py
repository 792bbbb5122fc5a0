"""Which of a run's slowest records were in flight at a broker GC pause: not a test, a script.

    bench run scenarios/latency-20k.yaml --keep-broker --keep-topics --out results/x
    PYTHONPATH=. python -m tests.perf.gc_tail results/x [--gc-dir .fraudstream/brokers/9092/node-1]
    bench topics delete --namespace <the run's namespace> --yes

Reads the run's fraud-scores (read_committed) from the local broker: per record the intended
send time (the `bench` header) and the scorer's CreateTime, so the time until scored. Against
the broker's GC pauses (gc.log, bench.broker.gclog): the share of the slowest 1 % of records
due in the `--before` ms before a pause ended (in flight while the broker stood still), beside
the share of all records due then; and the p99 of 100-ms bins with and without a pause.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer

from bench.broker.gclog import GC_LOG, parse_pauses
from bench.load.header import HEADER, HEADER_DTYPE


def _records(bootstrap: str, topic: str) -> tuple[np.ndarray, np.ndarray]:
    """(intended send s, output CreateTime s) of every record of `topic` with a bench header."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "gc-tail", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    intended, created, idle = [], [], 0
    while idle < 3:   # no record for 6 s: the kept topic is read
        msgs = c.consume(10_000, 2.0)
        idle = 0 if msgs else idle + 1
        for m in msgs:
            if m.error() is None:
                header = next((v for k, v in m.headers() or () if k == HEADER), None)
                if header is not None:
                    intended.append(int(np.frombuffer(header, HEADER_DTYPE)["t"][0]) / 1e9)
                    created.append(m.timestamp()[1] / 1e3)
    c.close()
    return np.array(intended), np.array(created)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="the run's --out directory (kept topics)")
    ap.add_argument("--gc-dir", default=os.path.join(os.environ.get("FRAUDSTREAM_HOME", ".fraudstream"),
                                                      "brokers", "9092", "node-1"))
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--before", type=float, default=60.0, help="ms before a pause's end counted as in flight")
    args = ap.parse_args()
    result = json.loads(Path(glob.glob(f"{args.results}/**/result.json", recursive=True)[0]).read_text())
    topic = next(t for t in result["runs"][0]["topics"] if t.endswith("fraud-scores"))
    due, created = _records(args.bootstrap, topic)
    latency = (created - due) * 1000
    ends = np.array([end / 1000 for log in sorted(Path(args.gc_dir).glob(GC_LOG + "*"))
                     for end, _, _ in parse_pauses(log.read_text(errors="replace"))])
    ends = np.sort(ends[(ends >= due.min()) & (ends <= due.max() + 1)])

    def in_flight(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(ends, t)   # the first pause ending at or after t
        return (i < ends.size) & (ends[np.minimum(i, ends.size - 1)] - t <= args.before / 1000)

    slow = latency >= np.percentile(latency, 99)
    print(f"{due.size:,} records, until scored p50 {np.percentile(latency, 50):.1f} ms, "
          f"p99 {np.percentile(latency, 99):.1f} ms; {ends.size} broker GC pauses")
    print(f"due within {args.before:.0f} ms before a pause ended: {in_flight(due).mean():.1%} of all records, "
          f"{in_flight(due[slow]).mean():.1%} of the slowest 1 %")
    bins = ((due - due.min()) * 10).astype(np.int64)
    paused = np.zeros(bins.max() + 1, bool)
    paused[bins[in_flight(due)]] = True
    p99 = [np.percentile(latency[bins == b], 99) for b in range(paused.size) if (bins == b).any()]
    kind = [paused[b] for b in range(paused.size) if (bins == b).any()]
    with_p = [p for p, k in zip(p99, kind) if k]
    without = [p for p, k in zip(p99, kind) if not k]
    print(f"100-ms bins: median p99 {np.median(with_p):.1f} ms with a pause ({len(with_p)} bins), "
          f"{np.median(without):.1f} ms without ({len(without)})")


if __name__ == "__main__":
    main()
