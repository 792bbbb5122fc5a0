"""`bench drain`: how fast the scoring service alone empties a pre-loaded topic, exactly once."""

import sys
import time
import uuid
from pathlib import Path

import click

from bench.options import check_bootstrap

__all__ = ["drain", "run_stamp"]


@click.command()
@click.option("--records", type=click.IntRange(min=1000), default=1_500_000, show_default=True,
              help="Transactions to pre-load into the input topic (the 10-90 % window should "
                   "span 40 polls, 0.1 s apart). A broker the project starts keeps ~512 MB per "
                   "partition: up to ~3,500,000 records fit.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Scoring processes (default: one per input partition).")
@click.option("--batch-max-records", type=click.IntRange(min=1), default=None,
              help="Records per transaction at most (default: the service's).")
@click.option("--batch-max-wait-ms", type=click.IntRange(min=1), default=None,
              help="Close a partial batch after this many ms (default: the service's).")
@click.option("-X", "kafka_settings", multiple=True, metavar="KEY=VALUE",
              help="librdkafka setting for the service's clients, e.g. -X linger.ms=20 (repeatable).")
@click.option("--bootstrap", default=None, callback=check_bootstrap,
              help="Use this Kafka cluster instead of the embedded local broker "
                   "(broker CPU is then not measured).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results"), show_default=True, help="Where result.json and the service log go.")
@click.option("--keep-topics", is_flag=True, help="Do not delete the run's topics afterwards.")
@click.option("--no-verify", is_flag=True, help="Skip reading the outputs back (saves ~10 s per 1M).")
@click.option("--no-state", is_flag=True, help="Run the service without per-card state (stateless scoring).")
@click.option("--snapshot-interval", "snapshot_interval_s", type=click.FloatRange(0, 3600), default=None,
              help="Seconds between the service's card-state snapshots per partition (0: every "
                   "transaction) [service default: 5].")
def drain(records, workers, batch_max_records, batch_max_wait_ms, kafka_settings, bootstrap, out_dir,
          keep_topics, no_verify, no_state, snapshot_interval_s):
    """Throughput of the scoring service alone: pre-load the input, then time the drain.

    Writes --records transactions to a fresh namespace's input topic, starts `python -m core`
    on it, and times it until its committed offsets (exactly-once transactions) reach the end.
    Reports the steady rate (10 %-90 % of the input), commit latency, batch size and CPU per
    transaction of the scorers and the broker, then reads the outputs back read_committed:
    every input exactly once in fraud-scores, alerts exactly the flagged ones, no dead letter.

    \b
    Example:
      bench drain                                # 1.5M records, one worker per partition
      bench drain --records 300000 --workers 2 --batch-max-records 4000
      bench drain -X max.partition.fetch.bytes=8388608   # try a client setting
      bench drain --workers 2 --no-state         # the stateless path, for comparison
      bench drain --workers 2 --snapshot-interval 0   # a snapshot in every transaction

    Without --bootstrap it uses the local broker, starting it if none runs, and leaves it
    running afterwards (bench broker down stops it).

    Exit code 0: drained and exactly-once verified; 4: outputs missing, duplicated, or
    dead-lettered; 1: an error (one line); 2: a bad command line.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bench.broker import ensure_running
    import msgspec

    from bench.drain.measure import DrainOptions, drain as run_drain, preload, read_outputs
    from bench.report.result import check_out_dir, encode_result
    from bench.run.orchestrate import machine
    from bench.run.pipeline import check_service_options
    from bench.kafka.topics import create_topics, delete_topics, require_broker
    from core.topics import TopicNames

    if no_state and snapshot_interval_s is not None:
        raise click.UsageError("--snapshot-interval and --no-state exclude each other: "
                                   "without state there are no snapshots")
    kafka = {}
    for item in kafka_settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="-X")
        kafka[key] = value
    check_service_options("bench drain --batch-max-records / --batch-max-wait-ms / -X", batch_max_records=batch_max_records,
                          batch_max_wait_ms=batch_max_wait_ms, kafka=kafka, state=not no_state)
    check_out_dir(out_dir)
    console = Console(stderr=True, highlight=False)
    broker_pids: list[int] = []
    if bootstrap is None:
        cluster = ensure_running(echo=lambda m: console.print(f"[dim]{m}[/]"))
        bootstrap, broker_pids = cluster.bootstrap, list(cluster.pids.values())
    else:
        require_broker(bootstrap)
    stamp = run_stamp()
    run_dir = out_dir / f"drain-{stamp}"
    namespace = f"drain.{stamp}"
    names = TopicNames.namespaced(namespace)
    create_topics(bootstrap, names)
    progress = Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console,
                        disable=not console.is_terminal)
    tasks: dict[str, tuple[int, float]] = {}

    def show(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = (progress.add_task(phase, total=total, rate=""), time.monotonic())
        task, t0 = tasks[phase]
        rate = done / max(time.monotonic() - t0, 1e-9)
        progress.update(task, completed=done, rate=f"{rate:,.0f}/s")

    opts = DrainOptions(bootstrap=bootstrap, namespace=namespace, records=records, workers=workers,
                        batch_max_records=batch_max_records, batch_max_wait_ms=batch_max_wait_ms,
                        kafka=kafka, broker_pids=broker_pids, log_path=run_dir / "service.log", progress=show,
                        state=not no_state, snapshot_interval_s=snapshot_interval_s)
    try:
        with progress:
            loaded_s = preload(opts)
            console.print(f"pre-loaded {records:,} records into {names.transactions} in {loaded_s:.1f} s")
            result = run_drain(opts)
        if not no_verify:
            console.print("reading the outputs back (read_committed) ...")
            result = msgspec.structs.replace(result, verdict=read_outputs(bootstrap, names, records))
    finally:
        if not keep_topics:
            delete_topics(bootstrap, names)
    result = msgspec.structs.replace(result, machine=machine())
    _print(result)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").write_bytes(encode_result(result) + b"\n")
    click.echo(f"result: {run_dir / 'result.json'}")
    if result.verdict is not None and not result.verdict.exactly_once:
        sys.exit(4)


_ROUGH_POLLS = 5


def _state_words(settings) -> str:
    """Per-card state as the drain ran it."""
    from bench.report.text import snapshot_words

    if not settings.state:
        return "no per-card state"
    words = snapshot_words(settings.snapshot_interval_s)
    return f"per-card state, {words}" if words else "per-card state"


def _print(r) -> None:
    """The figures of a DrainResult (bench.drain.result), a few lines."""
    from bench.drain.result import STEADY_POLLS

    cpu = ", ".join(f"{k} {v:.2f} cores ({r.cpu_us_per_tx[k]:.1f} us/tx)" for k, v in r.cpu_cores.items())
    click.echo(f"drained {r.records:,} records, {r.partitions} partitions, {r.workers} workers, "
               + _state_words(r.settings))
    if r.steady_tps is None or r.overall_tps is None:
        click.echo("  rate: not timed, the whole topic was committed within a poll or two "
                   f"(first commit after {r.first_commit_after_s} s; use more --records)")
    else:
        rough = (f"; rough: the topic drained within {r.timed_polls} poll(s) 0.1 s apart, use more "
                 "--records") if r.timed_polls < _ROUGH_POLLS else (
            f"; the 10-90 % window spans {r.window_polls} polls, fewer than {STEADY_POLLS}: within "
            f"~{200 // max(r.window_polls, 1)} %, use more --records"
            if r.window_polls is not None and r.window_polls < STEADY_POLLS else "")
        click.echo(f"  steady rate (10-90 %): {r.steady_tps:,} tx/s   overall: {r.overall_tps:,} tx/s "
                   f"(first commit after {r.first_commit_after_s} s{rough})")
    click.echo(f"  transactions: {r.transactions:,}, mean batch {r.mean_batch:,} records; "
               f"commit p50 {r.commit_p50_ms} ms, p99 {r.commit_p99_ms} ms")
    click.echo(f"  CPU: {cpu or 'not measured (drained too fast)'}")
    v = r.verdict
    if v:
        click.echo(f"  outputs: {v.scored:,} scored, {v.missing} missing, {v.duplicated} duplicated, "
                   f"{v.unexpected} unexpected; {v.alerts:,} alerts ({v.alerts_mismatched} "
                   f"mismatched); {v.dead_letters} dead letters -> "
                   + ("exactly once" if v.exactly_once else "NOT exactly once"
                      + (" (valid input dead-lettered)" if v.dead_letters else "")))


def run_stamp() -> str:
    """The name of one drain's results directory and topic namespace: its start time, and a
    random part, since two drains started within a second (a script, two shells) would share
    their topics and each count the other's records."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
