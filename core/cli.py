"""The service's command line, declared once: `python -m core` and `bench score` are this command.

    python -m core --bootstrap kafka:9092 --metrics-port 9464
    bench score --bootstrap kafka:9092 --metrics-port 9464      # the same options
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Callable

import click

from core.config import MAX_WORKERS, ScoringConfig
from core.errors import ConfigError, FraudstreamError

__all__ = ["score", "main", "not_empty", "BOOTSTRAP_HINT"]

# The defaults the help shows are ScoringConfig's own (the options default to None so a YAML
# file's value is not overridden by a flag that was not given).
_DEFAULT = ScoringConfig()

_HELP = """Score card transactions from Kafka exactly once: one process per partition, one Kafka
transaction per micro-batch (outputs + input offsets). Stops cleanly on SIGTERM / Ctrl-C.

Start-up errors stop it (model, config, Kafka unreachable, topics missing, credentials). After
start-up only two errors stop it: a setting the broker refuses, and an instance id another live
service also uses (a worker fenced 3 times in a row within 60 s of its start). Each is one
`error:` line and exit 1. A worker that fails otherwise is restarted with backoff (0.25 s
doubling to 30 s) while the others work; /healthz on the metrics port says which slots are down.

\b
Example (four terminals):
  bench broker up && bench topics create
  python -m core --bootstrap 127.0.0.1:9092            # or: bench score
  bench produce --tps 2000 --duration 60
  bench alerts
\b
Two hosts sharing the partitions of one group (ids unique without coordination):
  hostA$ python -m core --bootstrap kafka:9092 --metrics-port 9464
  hostB$ python -m core --bootstrap kafka:9092 --metrics-port 9464
"""


def not_empty(hint: str) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """A click callback for an option that may be left out but not given empty (`--bootstrap
    "$BROKERS"` with BROKERS unset: librdkafka retries "" until a timeout, in silence)."""
    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise click.BadParameter(f"empty; {hint}")
        return value
    return check


BOOTSTRAP_HINT = "give host:port[,host:port...]"


@click.command("score", help=_HELP, context_settings={"show_default": True, "help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML file of ScoringConfig fields (flags override it).")
@click.option("--bootstrap", "bootstrap_servers", default=None, metavar="SERVERS", envvar="FRAUDSTREAM_BOOTSTRAP",
              callback=not_empty(BOOTSTRAP_HINT),
              help=f"Kafka bootstrap servers [default: {_DEFAULT.bootstrap_servers}].")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS), metavar="N",
              help=f"Scoring processes, at most {MAX_WORKERS} [default: one per input partition].")
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="Model metadata file [default: the committed model].")
@click.option("--namespace", default=None, metavar="NS",
              help="Topic namespace: <ns>.transactions, <ns>.fraud-scores, ...")
@click.option("--group", "group_id", default=None, metavar="ID",
              help=f"Consumer group id [default: {_DEFAULT.group_id}].")
@click.option("--instance-id", default=None, metavar="ID",
              help="This service's name in its worker ids (<group>.<ID>-<slot>); unique per live service of the "
                   "group [default: a random id made once and kept in FRAUDSTREAM_HOME].")
@click.option("--batch-max-records", type=int, metavar="N",
              help=f"Records per transaction at most [default: {_DEFAULT.batch_max_records}].")
@click.option("--batch-max-wait-ms", type=int, metavar="MS",
              help=f"Close a partial batch after this many ms [default: {_DEFAULT.batch_max_wait_ms}].")
@click.option("--metrics-port", type=int, metavar="PORT",
              help="Port of /metrics (Prometheus) and /healthz, e.g. 9464 (0: off) "
                   f"[default: {_DEFAULT.metrics_port}].")
@click.option("--stats-interval", "stats_interval_s", type=float, metavar="S",
              help=f"Seconds between stats lines, 0: none [default: {_DEFAULT.stats_interval_s:g}].")
@click.option("-X", "kafka_pairs", multiple=True, metavar="KEY=VALUE",
              help="librdkafka setting passed through, e.g. -X security.protocol=SSL (repeatable).")
@click.option("--first-slot", default=0, type=click.IntRange(0), metavar="N",
              help="Number of the first worker slot (slot i uses the ids <prefix>-<i>). Only needed when "
                   "services share one transactional_id_prefix (set in --config): give each its own range "
                   "of slots. Services with their own instance ids (the default) never need it.")
@click.option("--no-state", is_flag=True,
              help="No per-card velocity state: every transaction scored alone, by the stateless model "
                   "(models/fraud-model-stateless.meta.json) unless --model or FRAUDSTREAM_MODEL names "
                   "one (a model that reads the state then stops it at start-up); no card-state topic. "
                   "Without this flag, state is on and needs the compacted topic fraud-card-state "
                   "(made by: bench topics create).")
@click.option("--snapshot-interval", "state_snapshot_s", type=click.FloatRange(0.0, 3600.0), metavar="S",
              help="Seconds between card-state snapshots per partition (0: every transaction); a restore "
                   f"replays the input since the last one [default: {_DEFAULT.state_snapshot_s:g}].")
@click.option("--offset-reset", "offset_reset", type=click.Choice(["refuse", "earliest", "latest"]), default=None,
              metavar="POLICY",
              help="Where an input partition starts without a usable committed offset. refuse: a new group "
                   "(nothing committed, no outputs yet) and partitions the group never committed start at "
                   "the earliest record; a new group on topics that already hold outputs, or a partition "
                   "whose offset expired or is out of range, stays paused with one error line; earliest / "
                   "latest: every such partition starts at that end, silently (earliest scores retained "
                   "input again) [default: refuse].")
@click.option("--at-least-once", is_flag=True,
              help="TESTS ONLY: produce, flush, offsets committed every 5 s (shows why transactions are needed).")
@click.option("--log-level", default="INFO", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
              help="The supervisor's and the workers' log level (librdkafka's own lines are not affected).")
@click.pass_context
def score(ctx: click.Context, config_path, kafka_pairs, workers, first_slot, no_state, at_least_once, log_level,
          **fields):
    from core.service import build_config, run_service

    try:
        config = build_config(config_path, kafka_pairs=tuple(kafka_pairs),
                              exactly_once=False if at_least_once else None,
                              state=False if no_state else None, **fields)
    except ConfigError as exc:
        raise ConfigError(_with_flag(str(exc), ctx, fields, kafka_pairs)) from None
    if not config.state and fields.get("state_snapshot_s") is not None:
        raise click.UsageError("--snapshot-interval and --no-state exclude each other (no state, no snapshots)"
                               if no_state else
                               f"--snapshot-interval with state: false in {config_path}: no state, no snapshots")
    early = ctx.obj.get("early_signals") if isinstance(ctx.obj, dict) else None
    code = run_service(config, workers=workers, first_slot=first_slot, log_level=getattr(logging, log_level),
                       early_signals=early)
    if code:
        ctx.exit(code)


def _with_flag(message: str, ctx: click.Context, fields: dict, kafka_pairs: tuple[str, ...] = ()) -> str:
    """The message with the flag the bad value came from: ScoringConfig names its field
    (state_snapshot_s), the user typed --snapshot-interval."""
    named = re.search(r"use the ScoringConfig field (\w+) instead", message)   # a reserved key
    given = {pair.partition("=")[0].strip() for pair in kafka_pairs}
    if named is not None and message.split(":", 1)[0].removeprefix("kafka.") in given:   # by -X, not the file
        flag = next((p.opts[0] for p in ctx.command.params if p.name == named.group(1)), None)
        return message if flag is None else message.replace(
            named.group(0), f"use {flag} (the ScoringConfig field {named.group(1)}) instead")
    match = re.match(r"invalid scoring config: (\w+):", message)
    if match is None or fields.get(match.group(1)) is None:
        return message   # not a flag's value (the --config file's, or no field named)
    flag = next(p.opts[0] for p in ctx.command.params if p.name == match.group(1))
    return f"{message} (from {flag} {fields[match.group(1)]})"


def main(argv: list[str] | None = None, *, early_signals: list[int] | None = None) -> int:
    """`python -m core`: the exit code (errors are one `error:` line on stderr, usage errors click's)."""
    try:
        score.main(args=argv, prog_name="python -m core", standalone_mode=False,
                   obj={"early_signals": early_signals})
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    except FraudstreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
