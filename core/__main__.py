"""`python -m core`: the exactly-once scoring service (same as `bench score`)."""

from __future__ import annotations

import signal

# Installed before the imports below (numpy, the model...): a SIGTERM during start-up is then
# remembered and answered with a clean stop instead of killing the process mid-import.
_EARLY_SIGNALS: list[int] = []
for _sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(_sig, lambda signum, frame: _EARLY_SIGNALS.append(signum))

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from core.config import MAX_WORKERS  # noqa: E402
from core.errors import FraudstreamError  # noqa: E402
from core.service import EXAMPLE, build_config, run_service  # noqa: E402


def _at_least(low: int, high: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value} is above {high}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score card transactions from Kafka exactly once: one process per partition, "
                    "one Kafka transaction per micro-batch.", epilog=EXAMPLE)
    p.add_argument("--config", help="YAML file with ScoringConfig fields (flags override it)")
    p.add_argument("--bootstrap", dest="bootstrap_servers", help="Kafka bootstrap servers (default 127.0.0.1:9092)")
    p.add_argument("--workers", type=_at_least(1, MAX_WORKERS),
                   help=f"scoring processes, at most {MAX_WORKERS} (default: one per input partition)")
    p.add_argument("--model", dest="model_path", help="model metadata file (default: the committed model)")
    p.add_argument("--namespace", help="topic namespace: <ns>.transactions, <ns>.fraud-scores, ...")
    p.add_argument("--group", dest="group_id", help="consumer group id (default fraudstream-scoring)")
    p.add_argument("--batch-max-records", type=int, help="records per transaction at most")
    p.add_argument("--batch-max-wait-ms", type=int, help="close a partial batch after this many ms")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: off)")
    p.add_argument("--stats-interval", dest="stats_interval_s", type=float, help="seconds between stats lines")
    p.add_argument("-X", dest="kafka_pairs", action="append", default=[], metavar="KEY=VALUE",
                   help="librdkafka setting passed through, e.g. -X security.protocol=SSL (repeatable)")
    p.add_argument("--first-slot", type=_at_least(0), default=0, help="number of the first worker slot (default 0)")
    p.add_argument("--no-state", action="store_true",
                   help="no per-card velocity state: score every transaction alone (no card-state topic)")
    p.add_argument("--at-least-once", action="store_true",
                   help="TESTS ONLY: produce, flush, offsets committed every 5 s (shows why transactions are needed)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = build_config(
            args.config, kafka_pairs=tuple(args.kafka_pairs), bootstrap_servers=args.bootstrap_servers,
            model_path=args.model_path, namespace=args.namespace, group_id=args.group_id,
            batch_max_records=args.batch_max_records, batch_max_wait_ms=args.batch_max_wait_ms,
            metrics_port=args.metrics_port, stats_interval_s=args.stats_interval_s,
            exactly_once=False if args.at_least_once else None,
            state=False if args.no_state else None)
        return run_service(config, workers=args.workers, first_slot=args.first_slot,
                           log_level=getattr(logging, args.log_level), early_signals=_EARLY_SIGNALS)
    except FraudstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
