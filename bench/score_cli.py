"""`bench score`: run the exactly-once scoring service (same as `python -m core`)."""

from __future__ import annotations

import logging
import sys

import click

from core.config import MAX_WORKERS

__all__ = ["score"]


@click.command(context_settings={"show_default": True})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML file of ScoringConfig fields.")
@click.option("--bootstrap", default=None, envvar="FRAUDSTREAM_BOOTSTRAP",
              help="Kafka bootstrap servers [default: 127.0.0.1:9092].")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS), help="Scoring processes [default: one per input partition].")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), help="Model metadata file [default: committed model].")
@click.option("--namespace", default=None, help="Topic namespace (<ns>.transactions, ...).")
@click.option("--group", "group_id", default=None, help="Consumer group id [default: fraudstream-scoring].")
@click.option("--batch-max-records", type=int, help="Records per transaction at most.")
@click.option("--batch-max-wait-ms", type=int, help="Close a partial batch after this many ms.")
@click.option("--metrics-port", type=int, help="Prometheus /metrics port (0: off).")
@click.option("--stats-interval", "stats_interval_s", type=float, help="Seconds between stats lines.")
@click.option("-X", "kafka_pairs", multiple=True, metavar="KEY=VALUE",
              help="librdkafka setting passed through, e.g. -X security.protocol=SSL.")
@click.option("--first-slot", default=0, type=click.IntRange(0), help="Number of the first worker slot.")
@click.option("--at-least-once", is_flag=True, help="TESTS ONLY: produce, flush, offsets committed every 5 s.")
@click.option("--log-level", default="INFO", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def score(config_path, bootstrap, workers, model_path, namespace, group_id, batch_max_records,
          batch_max_wait_ms, metrics_port, stats_interval_s, kafka_pairs, first_slot, at_least_once, log_level):
    """Score transactions exactly once: one process per partition, one Kafka
    transaction per micro-batch (outputs + input offsets). Stops cleanly on Ctrl-C.

    \b
    Example (three terminals, like the seed):
      bench broker up && bench topics create
      bench score --metrics-port 9464
      bench produce --tps 2000 --duration 60
      bench alerts
    """
    from core.service import build_config, run_service

    config = build_config(
        config_path, kafka_pairs=kafka_pairs, bootstrap_servers=bootstrap, model_path=model_path,
        namespace=namespace, group_id=group_id, batch_max_records=batch_max_records,
        batch_max_wait_ms=batch_max_wait_ms, metrics_port=metrics_port, stats_interval_s=stats_interval_s,
        exactly_once=False if at_least_once else None)
    code = run_service(config, workers=workers, first_slot=first_slot, log_level=getattr(logging, log_level))
    if code:
        sys.exit(code)
