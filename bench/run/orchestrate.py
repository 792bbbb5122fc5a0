"""`bench run`: one scenario against one or more pipelines, end to end.

For each pipeline of the scenario: create the four topics in a fresh run namespace, start the
pipeline as a subprocess (unless --external-scorer), spawn the load generator and the sink,
wait until the first scored record is visible, run the warm-up and the measurement (or the
`max` search), let the outputs drain, check exactly-once from sequence numbers, tear down
what was started. Without a bootstrap the local broker is started if none runs.

    result = run_scenario(load_scenario("scenarios/peak.yaml"), RunOptions())
"""

import math
import os
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from bench.measure import procs
from bench.measure.restores import read_log, restores_after
from bench.run.harness import Harness
from bench.run.jitwarm import warm_broker
from bench.load.generator import ProducerSpec
from bench.run.phases import (Context, Measured, judge_fixed, median_peak, run_fixed, run_max,
                              wait_drained)
from bench.run.pipeline import PipelineProcess, check_service_options, command_for
from bench.load.schedule import NS, profile_segments
from bench.spec.scenario import Max, Scenario, pipelines_of
from bench.measure.sink import SinkSpec
from bench.report.result import (BrokerData, Comparison, FaultEvent, Headline, Machine, PipelineRun,
                                 RunResult, ScorerMemory, Window)
from bench.measure.verdict import verdict
from bench.spec.target import Target, consumer_config, embedded_port, load_target, producer_config
from bench.measure.writeback import writeback_settings
from bench.report.ratio import ratio_range
from bench.errors import BrokerLost, PipelineUnderTestError, TopicError
from core.errors import ConfigError
from core.topics import PARTITIONS, STATE_TOPIC_CONFIG, TopicNames

__all__ = ["RunOptions", "run_scenario", "judge_run", "machine", "resolve_target"]

READY_TIMEOUT_S = 240.0   # model compile + group join on a loaded 2-core machine
READY_HINT_S = 30.0       # then say what it waits for
PROBE_TPS = 100.0


@dataclass
class RunOptions:
    bootstrap: str | None = None       # None: target's, else the embedded local broker
    external_scorer: bool = False      # the pipeline runs elsewhere, reading the namespace given
    namespace: str | None = None       # with external_scorer: the namespace it reads
    out_dir: Path = Path("results")
    keep_topics: bool = False
    keep_broker: bool = False          # leave a broker this run started running afterwards
    progress: object = None            # callable(state dict) or None
    echo: object = print
    extra: dict = field(default_factory=dict)


def resolve_target(scenario: Scenario, scenario_path: Path | None) -> Target:
    t = scenario.target
    if isinstance(t, Target):
        return t
    if isinstance(t, str):
        base = scenario_path.parent if scenario_path else Path.cwd()
        return load_target(base / t)
    return load_target(None)


def machine() -> Machine:
    import confluent_kafka
    import numpy

    return Machine(cores=os.cpu_count(), cpu_model=procs.cpu_model(), platform=platform.platform(),
                   python=platform.python_version(), confluent_kafka=confluent_kafka.__version__,
                   librdkafka=confluent_kafka.libversion()[0], numpy=numpy.__version__,
                   loadavg_1m_at_end=round(os.getloadavg()[0], 2), vm_writeback=writeback_settings())


def _ensure_broker(target: Target, opts: RunOptions, needs_own: bool):
    external = opts.bootstrap or target.bootstrap
    if external:
        from bench.kafka.topics import require_broker

        require_broker(external)
        return external, None
    from bench.broker import ensure_running

    port = embedded_port(target)
    if needs_own and port == 9092:
        raise ConfigError("a broker fault needs a cluster of its own: set the target's port to "
                          "something other than the shared 9092 - at $.target.port")
    cluster = ensure_running(port=port, nodes=target.nodes, echo=opts.echo, data_dir=target.data_dir)
    return cluster.bootstrap, cluster


def _create_topics(bootstrap: str, names: TopicNames, partitions: int) -> None:
    from bench.kafka.topics import create_topics, replica_settings

    if partitions == PARTITIONS["transactions"]:
        create_topics(bootstrap, names)
        return
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    rf, configs = replica_settings(len(admin.list_topics(timeout=30).brokers))
    counts = [partitions, partitions, PARTITIONS["alerts"], PARTITIONS["deadletter"], partitions]
    futures = admin.create_topics([NewTopic(n, num_partitions=c, replication_factor=rf,
                                            config={**configs, **(STATE_TOPIC_CONFIG if n == names.state else {})})
                                   for n, c in zip(names.every(), counts)], request_timeout=30)
    for name, fut in futures.items():
        try:
            fut.result()
        except Exception as exc:
            raise TopicError(f"creating topic `{name}` failed: {exc}") from exc


def _partition_counts(bootstrap: str, names: TopicNames, timeout: float = 30.0) -> dict[str, int]:
    """Partitions of the two output topics, waiting for fresh topics to show in metadata."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    while True:
        meta = admin.list_topics(timeout=30).topics
        found = {t: meta[t] for t in (names.scores, names.alerts) if t in meta}
        if len(found) == 2 and all(m.error is None and m.partitions for m in found.values()):
            return {t: len(m.partitions) for t, m in found.items()}
        if time.monotonic() > deadline:
            raise TopicError(f"topics {names.scores}, {names.alerts} not in the cluster's "
                                f"metadata {timeout:.0f}s after creation")
        time.sleep(0.2)


def run_scenario(scenario: Scenario, opts: RunOptions, scenario_path: Path | None = None) -> RunResult:
    """Run every pipeline of the scenario; the result is what the JSON file holds."""
    target = resolve_target(scenario, scenario_path)
    if not opts.external_scorer and "fraudstream" in pipelines_of(scenario):
        check_service_options(f"{scenario_path or scenario.name}: batch or the target's scorer settings",
                              batch_max_records=scenario.batch.max_records, batch_max_wait_ms=scenario.batch.max_wait_ms,
                              kafka=target.scorer, state=scenario.state)
    for i, f in enumerate(scenario.faults):
        if f.kill == "broker" and f.index is not None and f.index >= target.nodes:
            raise ConfigError(f"{scenario_path or scenario.name}: faults[{i}].index ({f.index}) names no broker node: "
                              f"the target has {target.nodes} (0..{target.nodes - 1}) - at $.faults[{i}].index")
    needs_own = any(f.kill == "broker" for f in scenario.faults)
    bootstrap, cluster = _ensure_broker(target, opts, needs_own)
    if needs_own and cluster is None:
        raise ConfigError("broker faults need the embedded cluster (no --bootstrap, target "
                          "bootstrap null) - at $.faults")
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    broker_data = None if cluster is None else BrokerData(
        dir=str(cluster.data_dir or ""), in_memory=cluster.data_in_memory)
    runs = []
    try:
        for pipeline in pipelines_of(scenario):
            runs.append(_run_pipeline(scenario, pipeline, target, bootstrap, cluster, opts))
    finally:
        if cluster is not None and cluster.started and not opts.keep_broker:
            from bench.broker import stop
            opts.echo(f"stopping the kafka cluster this run started on port {cluster.port} "
                      "(--keep-broker leaves it up)")
            stop(cluster.port, drop_data=broker_data.in_memory)   # give the RAM back
    comparison = None
    if len(runs) == 2:
        a, b = (r.headline.sustained_tps for r in runs)
        comparison = Comparison(pipelines=[r.pipeline for r in runs], sustained_tps=[a, b],
                                ratio=(b / a) if a and b else None,
                                ratio_range=ratio_range(*(r.headline.bracket_tps for r in runs)))
    return RunResult(scenario=scenario, started_at=started_at, bootstrap=bootstrap,
                     embedded_broker=cluster is not None, machine=machine(), runs=runs,
                     broker_data=broker_data, comparison=comparison,
                     passed=all(r.passed for r in runs),
                     exactly_once=all(r.verdict.exactly_once for r in runs))


def _run_pipeline(scenario, pipeline, target, bootstrap, cluster, opts) -> PipelineRun:
    run_id = f"{scenario.name}-{pipeline}-{time.strftime('%Y%m%d-%H%M%S')}-{random.randrange(16**4):04x}"
    namespace = opts.namespace if opts.external_scorer else f"bench.{run_id}"
    if opts.external_scorer and not namespace:
        raise ConfigError("--external-scorer needs --namespace: the topics the scorer reads")
    names = TopicNames.namespaced(namespace)
    topo = scenario.topology
    _create_topics(bootstrap, names, topo.partitions)
    tag = random.getrandbits(63)
    counts = _partition_counts(bootstrap, names)
    prod_cfg = producer_config(target, bootstrap)
    harness = Harness(
        producers=[ProducerSpec(i, bootstrap, names.transactions, prod_cfg, scenario.traffic, tag,
                                topo.harness_nice) for i in range(topo.producers)],
        sinks=[SinkSpec(i, topo.sinks, consumer_config(target, bootstrap, f"bench-sink.{run_id}"),
                        names.scores, names.alerts, counts, tag, topo.harness_nice)
               for i in range(topo.sinks)])
    service = None
    events: list[FaultEvent] = []
    rng = random.Random(scenario.traffic.seed)
    opts.echo(f"run {run_id}: pipeline {pipeline}, topics {names.transactions} ...")
    try:
        if not opts.external_scorer:
            argv = command_for(pipeline, bootstrap=bootstrap, namespace=namespace,
                               workers=topo.scoring_processes, group=f"bench.{run_id}",
                               batch=scenario.batch, kafka=target.scorer, state=scenario.state,
                               snapshot_interval_s=scenario.snapshot_interval_s)
            service = PipelineProcess(argv, opts.out_dir / run_id / f"{pipeline}.log")
        harness.start()

        last_look = [0.0]
        measuring, memory = [False], procs.RssWatch()

        def alive():
            if service is not None and not service.alive():
                raise PipelineUnderTestError(f"{pipeline} service exited with code {service.proc.returncode}; "
                                    f"log {service.log_path}:\n{service.log_tail()}")
            if service is not None and measuring[0]:
                memory.sample(service.all_pids(), harness.timeline.total_scores)
            # A local cluster with no node left is an error, until a planned broker fault: after
            # one, a one-node cluster is all dead on purpose.
            if cluster is not None and time.monotonic() - last_look[0] >= 1.0 and not _broker_killed(events):
                last_look[0] = time.monotonic()
                if (why := _broker_gone(cluster)) is not None:
                    raise BrokerLost(why)

        def cpu_groups():
            groups = harness.pids()
            if service is not None:
                groups["scorer"] = service.all_pids()
            if cluster is not None:
                groups["broker"] = list(cluster.pids.values())
            return groups

        def fault(f):
            t = time.time()
            if f.kill == "scorer":
                workers = service.workers() if service else []
                if not workers:
                    events.append(FaultEvent(t=t, kill="scorer", error="no worker to kill"))
                    return
                pid = workers[f.index % len(workers)] if f.index is not None else rng.choice(workers)
                procs.kill_hard(pid)
                events.append(FaultEvent(t=t, at_s=f.at_s, kill="scorer", pid=pid))
            else:
                from bench.broker import stop_node

                node = (f.index or 0) % target.nodes + 1
                stop_node(cluster.port, node, hard=True)
                events.append(FaultEvent(t=t, at_s=f.at_s, kill="broker", node=node))
            opts.echo(f"fault at {f.at_s:g}s: killed {msgspec.to_builtins(events[-1])}")

        def broker_gc(start_s, end_s):
            from bench.broker.lifecycle import gc_summary
            return gc_summary(cluster, start_s, end_s)

        ctx = Context(harness, scenario, cpu_groups, opts.progress, fault, alive,
                      broker_gc if cluster is not None else None)
        _wait_ready(ctx, harness, opts.echo, f"the scoring service reading namespace {namespace!r} "
                    "(bench score --namespace ...)" if opts.external_scorer else "the scoring service")
        broker_warmup = None
        if cluster is not None:
            broker_warmup = warm_broker(ctx, list(cluster.pids.values()), _first_tps(scenario), opts.echo)
        t0 = math.ceil(time.time()) + 1
        measuring[0] = True
        info = run_max(ctx, t0) if isinstance(scenario.rate, Max) else run_fixed(ctx, t0)
        sent = harness.stop_producers()
        drained = wait_drained(ctx, scenario.drain_s)
        if service is not None:
            memory.sample(service.all_pids(), harness.timeline.total_scores, force=True)
        measuring[0] = False
        window = judge_fixed(ctx, info) if info.kind == "fixed" else None
        seqs = harness.finish_sinks()
        v = verdict(sent, seqs["score_seqs"], seqs["flagged"], seqs["alert_seqs"],
                    seqs["positives"], seqs["no_header"], seqs["foreign"],
                    seqs["positive_patterns"])
        v = msgspec.structs.replace(v, delivery_errors=harness.n_delivery_errors,
                                    first_delivery_errors=harness.delivery_errors[:5], drained=drained)
        tl = harness.timeline
        first = min(tl.sent, default=t0)
        headline, slo_passed = judge_run(info, window)
        return PipelineRun(
            pipeline=pipeline, run_id=run_id, topics=list(names.all()), kind=info.kind,
            headline=headline, window=window, confirmation=info.confirmation,
            step_downs=info.step_downs,
            steps=info.steps if info.kind == "max" else None, slo=scenario.slo,
            slo_passed=slo_passed, verdict=v, passed=slo_passed and v.exactly_once,
            faults=_with_restores(events, service if pipeline == "fraudstream" else None),
            per_second=tl.per_second(info.t_measure - math.ceil(scenario.warmup_s),
                                     max(tl.sent, default=t0) + 1),
            pool_build_s=harness.pool_seconds, first_send_epoch_s=first,
            workers_restarted=sum(e.kill == "scorer" and e.pid is not None for e in events),   # killed
            broker_warmup=broker_warmup,
            scorer_memory=_scorer_memory(memory))
    finally:
        harness.close()
        killed = {e.node for e in events if e.kill == "broker"}
        # A local broker that stopped by itself (not by a fault) can neither take the service's
        # last commits nor delete topics: waiting for either only delays the error.
        lost = cluster is not None and not killed and _broker_gone(cluster) is not None
        if service is not None:
            service.stop(timeout=3.0 if lost else 20.0)
        for node in killed:
            from bench.broker.lifecycle import start_node
            start_node(cluster.port, node)  # leave the cluster whole for the next run
        if lost and not opts.keep_topics:
            opts.echo(f"the run's topics ({namespace}.*) stay on the stopped broker")
        elif not opts.keep_topics and not opts.external_scorer:
            try:
                from bench.kafka.topics import delete_topics
                delete_topics(bootstrap, names)
            except Exception as exc:  # teardown must not hide the run's own error
                opts.echo(f"warning: could not delete the run's topics: {exc}")


def _with_restores(events: list[FaultEvent], service: PipelineProcess | None) -> list[FaultEvent]:
    """Scorer kills with how each partition of the killed process came back (from the
    service's log, complete by now: the run has drained)."""
    if service is None or not any(e.pid is not None for e in events):
        return events
    log = read_log(service.log_path)
    return [e if e.pid is None else msgspec.structs.replace(e, restores=restores_after(log, e.t, e.pid))
            for e in events]


def _scorer_memory(watch: procs.RssWatch) -> ScorerMemory | None:
    if watch.first is None or watch.last is None:
        return None
    mb = 1 << 20
    return ScorerMemory(start_mb=round(watch.first[0] / mb, 1), peak_mb=round(watch.peak / mb, 1),
                        end_mb=round(watch.last[0] / mb, 1), scored=watch.last[1] - watch.first[1])


def _first_tps(scenario: Scenario) -> float:
    if isinstance(scenario.rate, Max):
        return scenario.rate.start_tps
    return profile_segments(scenario.rate, scenario.duration_s)[0].tps


def _broker_killed(events: list[FaultEvent]) -> bool:
    return any(e.kill == "broker" for e in events)


def _broker_gone(cluster) -> str | None:
    """Why the local cluster cannot answer (every node's process has exited), else None."""
    from bench.broker.lifecycle import node_log_path, status

    rows = status(cluster.port)
    if rows and not any(r["alive"] for r in rows):
        return (f"the local broker on port {cluster.port} has stopped; see "
                f"{node_log_path(cluster.port, rows[0]['node'])}")
    return None


def _wait_ready(ctx: Context, harness: Harness, echo=print, scorer: str = "the scoring service") -> None:
    """Trickle probe records until the first scored one is visible (model compiled, group joined)."""
    now = time.time_ns()
    harness.plan([(now, int(READY_TIMEOUT_S * NS), PROBE_TPS)], replace=True)
    t0 = time.time()
    hinted = False
    while harness.timeline.total_scores == 0:
        waited = time.time() - t0
        if waited > READY_TIMEOUT_S:
            raise PipelineUnderTestError(f"no scored record visible within {READY_TIMEOUT_S:.0f}s of start: "
                                f"is {scorer} running?")
        if waited > READY_HINT_S and not hinted:
            echo(f"nothing scored after {READY_HINT_S:.0f} s: waiting for {scorer} "
                 f"(at most {READY_TIMEOUT_S:.0f} s)")
            hinted = True
        ctx.tick("starting", int(t0), PROBE_TPS)


def judge_run(info: Measured, window: Window | None) -> tuple[Headline, bool]:
    """The headline and whether the SLO held: a fixed run's window held it; a search held
    it if some rate was sustained (the median trial held a rate and, with confirmation, one
    of the holds held)."""
    if window is None:
        headline = _search_headline(info)
        return headline, headline.sustained_tps is not None
    sustained = window.achieved_tps if window.passed else None   # a fixed rate: only if it held
    return _from_window(window, sustained, bracket_tps=None if sustained is None
                        else (sustained, sustained)), window.passed


def _search_headline(info: Measured) -> Headline:
    peaks = info.peaks
    median = median_peak(peaks)
    held = [p for p in peaks if p is not None]
    spread = dict(peaks_tps=peaks, peak_median_tps=median,
                  peak_min_tps=None if None in peaks or not peaks else min(held),
                  peak_max_tps=max(held) if held else None,
                  bracket_tps=_bracket(info.brackets))
    if median is None or (info.confirmation or info.peak) is None:
        return Headline(sustained_tps=None, achieved_tps=None, asked_tps=None, e2e=None,
                        e2e_stages=None, publish_delay=None, e2e_spectrum=[], cpu_cores=None,
                        broker_gc=None, **spread)
    if info.confirmation is None:
        return _from_window(info.peak, median, **spread)
    holds = [info.confirmation, *info.step_downs]
    best = max((h for h in holds if h.passed), key=lambda h: h.asked_tps, default=None)
    if best is not None and not info.confirmation.passed:
        # the bracket of the rate held for confirm_s, not of the searches' peaks
        spread["bracket_tps"] = (best.asked_tps, min(h.asked_tps for h in holds
                                                     if not h.passed and h.asked_tps > best.asked_tps))
    return _from_window(best or info.confirmation, None if best is None else best.asked_tps,
                        confirmed=info.confirmation.passed, **spread)


def _from_window(w: Window, sustained, **extra) -> Headline:
    return Headline(sustained_tps=sustained, achieved_tps=w.achieved_tps, asked_tps=w.asked_tps,
                    e2e=w.e2e, e2e_stages=w.e2e_stages, publish_delay=w.publish_delay,
                    e2e_spectrum=w.e2e_spectrum, cpu_cores=w.cpu_cores, broker_gc=w.broker_gc,
                    judged_e2e=w.judged_e2e, unseen=w.unseen, **extra)


def _bracket(brackets: list[tuple[float, float | None]]) -> tuple[float, float | None] | None:
    """Where the sustained rate lies over all trials: [lowest peak, highest miss above a
    peak); high None when some trial held max_tps (no miss above it)."""
    if not brackets:
        return None
    highs = [hi for _, hi in brackets]
    return min(lo for lo, _ in brackets), None if None in highs else max(highs)
