"""`bench run SCENARIO.yaml`."""

import sys
import time
from pathlib import Path

import click

from bench.options import check_bootstrap, check_namespace
from core.config import MAX_WORKERS

__all__ = ["run"]


@click.command()
@click.argument("scenario_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--bootstrap", default=None, envvar="FRAUDSTREAM_BENCH_BOOTSTRAP", callback=check_bootstrap,
              help="Use this Kafka cluster instead of the embedded local broker (or set "
                   "FRAUDSTREAM_BENCH_BOOTSTRAP).")
@click.option("--external-scorer", is_flag=True,
              help="Do not start the scoring service: one already reads --namespace.")
@click.option("--namespace", default=None, callback=check_namespace,
              help="With --external-scorer (only): the topics' namespace.")
@click.option("--target", "target_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Target file (brokers, client properties); overrides the scenario's.")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS), default=None,
              help="Override topology.scoring_processes; also raises topology.partitions to N when N "
                   "is larger.")
@click.option("--duration", type=click.FloatRange(0, min_open=True), default=None, help="Override duration_s: seconds of measurement.")
@click.option("--tps", type=click.FloatRange(0, min_open=True), default=None,
              help="Override the rate: constant at this tx/s.")
@click.option("--repeat", type=click.IntRange(1, 50), default=None,
              help="A `max` search: run it this many times and take the median peak "
                   "(overrides rate.repeat, default 3).")
@click.option("--confirm", "confirm_s", type=click.FloatRange(0, 3600), default=None,
              help="A `max` search: hold the median peak this many seconds, and as long each "
                   "lower rate tried if it misses (overrides rate.confirm_s, default 60; 0: no "
                   "confirmation).")
@click.option("--confirm-steps", "confirm_steps", type=click.IntRange(0, 6), default=None,
              help="A `max` search: lower rates held after a missed confirmation, at most "
                   "(overrides rate.confirm_steps, default 2; 0: a missed confirmation ends it).")
@click.option("--pipeline", type=click.Choice(["fraudstream", "seed-baseline"]), default=None,
              help="Override the pipeline under test.")
@click.option("--no-state", is_flag=True,
              help="fraudstream without per-card state (--no-state, the stateless model); "
                   "overrides the scenario's `state`.")
@click.option("--snapshot-interval", "snapshot_interval_s", type=click.FloatRange(0, 3600), default=None,
              help="Seconds between fraudstream's card-state snapshots per partition (0: every "
                   "transaction); overrides the scenario's `snapshot_interval_s` [service default: 5].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Where the JSON result and PNG plots go.")
@click.option("--keep-topics", is_flag=True, help="Do not delete the run's topics afterwards.")
@click.option("--keep-broker", is_flag=True,
              help="Leave a broker this run had to start running afterwards.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--quiet", is_flag=True, help="No live progress line.")
def run(scenario_file, bootstrap, external_scorer, namespace, target_file, workers, duration, tps,
        repeat, confirm_s, confirm_steps, pipeline, no_state, snapshot_interval_s, out_dir, keep_topics, keep_broker,
        no_plots, quiet):
    """Run a benchmark scenario: open-loop load, end-to-end latency, exactly-once verdict.

    \b
    Example:
      bench run scenarios/peak.yaml                 # embedded broker, highest rate within the SLO
      bench run scenarios/peak.yaml --repeat 5      # five searches, median peak held 60 s
      bench run scenarios/peak.yaml --repeat 1 --confirm 0   # one quick search, no hold
      bench run scenarios/steady.yaml --workers 2
      bench run scenarios/latency-20k.yaml --no-state   # the stateless path, to compare
      bench run scenarios/failover.yaml --snapshot-interval 1   # shorter replays on restore
      # a scorer that runs elsewhere: its topics must exist and it must run first
      bench topics create --bootstrap kafka:9092 --namespace prod-test
      python -m core --bootstrap kafka:9092 --namespace prod-test   # in another terminal
      bench run scenarios/steady.yaml --bootstrap kafka:9092 --external-scorer --namespace prod-test

    Without --bootstrap it uses the local broker, starting it (with the target's data_dir)
    if none runs and stopping it afterwards; a local broker is first loaded until its JIT
    compiler settles (about a minute on a fresh one, a few seconds on a warm one), so the run
    does not measure the JVM warming up.

    Exit code 0: SLO held and exactly-once verified; 3: SLO missed; 4: exactly-once violated;
    1: the run could not be done (a bad scenario or target, no broker, a broker or service
    that stopped; the message says which); 2: a bad command line.
    """
    if external_scorer and not namespace:
        raise click.UsageError("--external-scorer needs --namespace: the topics the scorer reads")
    if namespace and not external_scorer:
        raise click.UsageError("--namespace is for --external-scorer only: a run that starts its own scorer "
                               "makes a fresh namespace of its own")
    import msgspec
    from rich.console import Console

    from bench.report import text as report
    from bench.report.result import check_out_dir, write_result
    from bench.run.orchestrate import RunOptions, run_scenario
    from bench.spec.scenario import Constant, Max, load_scenario, with_overrides
    from bench.spec.target import load_target

    scenario = load_scenario(scenario_file)
    changes = {}
    if workers is not None:
        changes["topology"] = msgspec.structs.replace(
            scenario.topology, scoring_processes=workers,
            partitions=max(workers, scenario.topology.partitions))
    if duration is not None:
        changes["duration_s"] = duration
    if tps is not None:
        changes["rate"] = Constant(tps=tps)
    search = {k: v for k, v in (("repeat", repeat), ("confirm_s", confirm_s), ("confirm_steps", confirm_steps))
              if v is not None}
    if search:
        rate = changes.get("rate", scenario.rate)
        if not isinstance(rate, Max):
            raise click.UsageError("--repeat, --confirm and --confirm-steps apply to a `max` rate search only")
        changes["rate"] = msgspec.structs.replace(rate, **search)
    if pipeline is not None:
        changes["pipeline"] = pipeline
    if no_state:
        if snapshot_interval_s is not None:
            raise click.UsageError("--snapshot-interval and --no-state exclude each other: "
                                   "without state there are no snapshots")
        changes["state"] = False
        changes["snapshot_interval_s"] = None
    if snapshot_interval_s is not None:
        changes["snapshot_interval_s"] = snapshot_interval_s
    if target_file is not None:
        changes["target"] = load_target(target_file)
    if changes:
        scenario = with_overrides(scenario, f"{scenario_file} with the command line's options", **changes)
    check_out_dir(out_dir)
    console = Console(stderr=True, highlight=False)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = out_dir / f"{scenario.name}-{stamp}"
    opts = RunOptions(bootstrap=bootstrap, external_scorer=external_scorer, namespace=namespace,
                      out_dir=run_dir, keep_topics=keep_topics, keep_broker=keep_broker,
                      echo=lambda msg: console.print(f"[dim]{msg}[/]"))
    if quiet or not console.is_terminal:
        opts.progress = _plain_progress(console) if not quiet else None
        result = run_scenario(scenario, opts, scenario_file)
    else:
        with report.LiveProgress(console) as live:
            opts.progress = live
            result = run_scenario(scenario, opts, scenario_file)
    path = write_result(result, run_dir / "result.json")
    report.print_result(result, report.report_console())
    if not no_plots:
        from bench.report.plots import plot_result
        plot_result(result, run_dir)
    click.echo(f"result: {path}")
    sys.exit(report.exit_code(result))


def _plain_progress(console):
    from bench.report.text import progress_text
    last = [0.0]

    def show(s):
        if time.monotonic() - last[0] >= 5:
            last[0] = time.monotonic()
            console.print(progress_text(s).strip(), markup=False, soft_wrap=True)
    return show
