"""`bench topics` (create, delete) and `bench passthrough`."""

import sys

import click

from bench.kafka.passthrough import measure_passthrough
from bench.kafka.topics import create_topics, delete_topics, require_broker
from bench.options import BOOTSTRAP, NAMESPACE
from core.topics import TopicNames

__all__ = ["topics", "passthrough"]


@click.group()
def topics():
    """The pipeline's topics: transactions (6), fraud-scores (6), fraud-alerts (3),
    fraud-deadletter (3) and the compacted card-state changelog fraud-card-state (6, as
    transactions), replication factor min(3, brokers); from 3 brokers on
    min.insync.replicas=2 (an acknowledged write is on two brokers).

    \b
    Example:
      bench topics create --bootstrap 127.0.0.1:9092
    """


@topics.command()
@BOOTSTRAP
@NAMESPACE
def create(bootstrap, namespace):
    """Create the topics (the four and the compacted card-state changelog); existing ones with
    the right shape are left alone.

    \b
    Examples:
      bench topics create
      bench topics create --namespace run42   # run42.transactions, ...
    """
    names = TopicNames.namespaced(namespace)
    require_broker(bootstrap)
    result = create_topics(bootstrap, names)
    for name in result["created"]:
        click.echo(f"created  {name}")
    for name in result["existed"]:
        click.echo(f"existed  {name}")
    if result["created"]:
        click.echo(f"topics get {result['replicas']}")


@topics.command()
@BOOTSTRAP
@NAMESPACE
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(bootstrap, namespace, yes):
    """Delete the topics (of a namespace), the card-state changelog included.

    \b
    Example:
      bench topics delete --namespace run42 --yes
    """
    names = TopicNames.namespaced(namespace)
    require_broker(bootstrap)
    if not yes:
        try:
            sure = click.confirm(f"delete {', '.join(names.every())} on {bootstrap}?")
        except click.Abort:   # stdin closed or Ctrl-C at the prompt: not a yes either
            click.echo("", err=True)
            sure = False
        if not sure:
            click.echo("nothing deleted", err=True)
            sys.exit(1)
    deleted = delete_topics(bootstrap, names)
    for name in deleted:
        click.echo(f"deleted  {name}")
    if not deleted:
        click.echo(f"none of {', '.join(names.every())} exists on {bootstrap}: nothing to delete")


@click.command()
@BOOTSTRAP
@click.option("--records", type=click.IntRange(1), default=1_000_000, show_default=True, help="How many records.")
@click.option("--size", type=click.IntRange(1, 1_000_000), default=800, show_default=True,
              help="Value size in bytes.")
@click.option("--header", is_flag=True,
              help="Give each record the load generator's 24-byte `bench` header and read it back.")
def passthrough(bootstrap, records, size, header):
    """Raw produce and consume rate through the broker, no scoring: the ceiling.

    CPU is this process's (librdkafka's threads included) per record. Run once with and once
    without --header to see what per-record headers cost the client.

    \b
    Example:
      bench passthrough --records 1000000 --size 800
      bench passthrough --records 1000000 --size 800 --header
    """
    require_broker(bootstrap)
    with_what = " with a bench header" if header else ""
    click.echo(f"producing {records:,} x {size} B records{with_what} to {bootstrap} ...", err=True)
    r = measure_passthrough(bootstrap, records, size, header=header)
    click.echo(f"produce  {r['produce_per_s']:>10,.0f} records/s  {r['produce_mb_s']:6.1f} MB/s"
               f"  {r['produce_cpu_us']:5.2f} us CPU/record")
    click.echo(f"consume  {r['consume_per_s']:>10,.0f} records/s  {r['consume_mb_s']:6.1f} MB/s"
               f"  {r['consume_cpu_us']:5.2f} us CPU/record  ({r['consumed']:,} of {records:,})")
    if r["consumed"] != records:
        raise click.ClickException("not every record came back")
    if header and r["consumed_with_header"] != records:
        raise click.ClickException(f"{records - r['consumed_with_header']:,} records came back "
                                   "without their bench header")
