"""`bench broker up|down|status|logs`."""

import subprocess
import sys

import click

from bench.broker import lifecycle
from bench.broker.jars import KAFKA_VERSION
from bench.broker.properties import CONTROLLER_OFFSET

__all__ = ["broker"]

# Node i listens on port + i - 1 and its controller on port + CONTROLLER_OFFSET + i - 1.
PORT = click.option("--port", default=lifecycle.DEFAULT_PORT, show_default=True,
                    type=click.IntRange(1, 65535 - CONTROLLER_OFFSET - 2),
                    help="Broker port of node 1 (nodes 2 and 3 take the next ports).")


@click.group()
def broker():
    """A local Apache Kafka broker (KRaft) from Maven Central jars, no Docker.

    \b
    Examples:
      bench broker up                 # one node on 127.0.0.1:9092
      bench broker up --nodes 3       # three nodes on 9092-9094, RF 3, min ISR 2
      bench broker up --data-dir /dev/shm/fraudstream   # logs in RAM: no writeback stalls
      bench broker status
      bench broker down
    """


@broker.command()
@PORT
@click.option("--nodes", type=click.Choice(["1", "3"]), default="1", show_default=True,
              help="One combined node, or a three-node quorum on loopback.")
@click.option("--data-dir", type=click.Path(file_okay=False, writable=True), default=None,
              help="Keep the nodes' logs in DIR/<port>-<cluster id>/node-N, not beside the broker's "
                   "state in .fraudstream/. On tmpfs (/dev/shm) appends never wait on kernel "
                   "writeback, the ~1 s stall every ~30 s that dominates latency runs on a "
                   "small VM; the data then lives in RAM and is gone at reboot.")
def up(port, nodes, data_dir):
    """Start the broker (or find it running) and print the bootstrap servers.

    The first call fetches Apache Kafka's jars with Maven into .fraudstream/ (git-ignored)
    and formats storage; later calls reuse both. --data-dir applies when the broker starts;
    it stays with it until `bench broker down`.

    \b
    Example:
      bench broker up --nodes 1 --port 9092
      bench broker up --data-dir /dev/shm/fraudstream
    """
    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    already = lifecycle.find_running(port)
    problem = lifecycle.moved_data_error(already, data_dir) if already is not None else None
    if problem:   # still usable: say so, but do not fail a script that only needs a broker
        click.echo(f"warning: {problem}", err=True)
    cluster = lifecycle.ensure_running(port=port, nodes=int(nodes), echo=echo, data_dir=data_dir)
    if already is not None:
        click.echo(f"kafka already running ({cluster.nodes} node(s)); bootstrap:", err=True)
    click.echo(cluster.bootstrap)


@broker.command()
@PORT
@click.option("--timeout", default=30.0, show_default=True, help="Seconds before SIGKILL.")
@click.option("--wipe", is_flag=True, help="Also delete the broker's data and logs.")
def down(port, timeout, wipe):
    """Stop the broker cleanly (SIGTERM), killing it after --timeout.

    \b
    Example:
      bench broker down --wipe
    """
    was_running = lifecycle.stop(port, timeout=timeout, wipe=wipe)
    click.echo("kafka stopped" if was_running else "kafka was not running")


@broker.command()
@PORT
def status(port):
    """Show each node: port, pid, resident memory. Exit 1 when nothing runs.

    \b
    Example:
      bench broker status
    """
    rows = lifecycle.status(port)
    if not any(r["alive"] for r in rows):
        click.echo(f"kafka {KAFKA_VERSION}: not running on port {port}")
        sys.exit(1)
    for r in rows:
        state = f"up   pid {r['pid']}  rss {r['rss_mb']:.0f} MiB" if r["alive"] else "down"
        click.echo(f"node {r['node']}  127.0.0.1:{r['port']}  {state}  data {r['data']}")


@broker.command()
@PORT
@click.option("--node", default=1, show_default=True, type=click.IntRange(1, 3), help="Which node's log.")
@click.option("-n", "--lines", default=40, show_default=True, type=click.IntRange(0), help="How many last lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
def logs(port, node, lines, follow):
    """Print the last lines of a node's log.

    \b
    Example:
      bench broker logs -n 100 -f
    """
    nodes = len(lifecycle.status(port))
    if nodes and node > nodes:
        raise click.ClickException(f"the broker on port {port} has {nodes} node(s): --node 1"
                                   + (f" to {nodes}" if nodes > 1 else ""))
    path = lifecycle.node_log_path(port, node)
    if not path.is_file():
        raise click.ClickException(f"no log at {path}: has the broker on port {port} run?")
    args = ["tail", "-n", str(lines)] + (["-F"] if follow else []) + [str(path)]
    subprocess.run(args)
