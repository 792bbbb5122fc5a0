"""`bench produce`: the payment-gateway simulator of the seed's three-terminal flow.

Open-loop: record i is due at start + i / tps whatever the broker does, so a slow pipeline
shows up as lag, not as a politely slower producer.
"""

from __future__ import annotations

import time

import click

from bench.topics import BOOTSTRAP, NAMESPACE, require_topic
from core.topics import TopicNames

__all__ = ["produce"]

_CHUNK = 50_000


@click.command()
@BOOTSTRAP
@NAMESPACE
@click.option("--tps", default=1000.0, show_default=True, type=click.FloatRange(min=0.1), help="Transactions per second.")
@click.option("--duration", default=60.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds to run.")
@click.option("--fraud-rate", default=0.01, show_default=True, type=click.FloatRange(0, 1), help="Share of fraud.")
@click.option("--seed", default=None, type=int, help="Random seed [default: time-based, printed].")
@click.option("--cards", default=10_000, show_default=True, type=click.IntRange(1), help="Distinct cards.")
def produce(bootstrap, namespace, tps, duration, fraud_rate, seed, cards):
    """Send synthetic card transactions (with fraud patterns) at a steady rate,
    keyed by card hash.

    \b
    Example:
      bench produce --tps 2000 --duration 60
    """
    from confluent_kafka import Producer

    from bench.loadgen import HEADER, pack_header  # the latency sink understands this traffic too
    from bench.synth import generate

    seed = int(time.time()) if seed is None else seed
    topic = TopicNames.namespaced(namespace).transactions
    total = max(1, int(tps * duration))
    require_topic(bootstrap, topic)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    click.echo(f"producing {total:,} transactions to {topic} at {tps:,.0f}/s (seed {seed})", err=True)
    start = time.monotonic_ns()
    wall0 = time.time_ns() - start
    period_ns = 1e9 / tps
    sent, fraud, report_at = 0, 0, time.monotonic() + 5.0
    try:
        while sent < total:
            n = min(_CHUNK, total - sent)
            batch = generate(n, seed=seed, fraud_rate=fraud_rate, n_cards=cards, id_offset=sent,
                             start=time.time(), span_s=max(n / tps, 1.0))
            payloads, keys = batch.payloads(), [c.encode() for c in batch.card_hash]
            fraud += int(batch.label.sum())
            for j in range(n):
                due = start + int((sent + j) * period_ns)
                wait = due - time.monotonic_ns()
                if wait > 1_000_000:
                    producer.poll(0)
                    time.sleep(wait / 1e9)
                headers = [(HEADER, pack_header(wall0 + due, sent + j, 0))]
                try:
                    producer.produce(topic, payloads[j], keys[j], headers=headers)
                except BufferError:
                    producer.poll(0.1)
                    producer.produce(topic, payloads[j], keys[j], headers=headers)
            sent += n
            if time.monotonic() >= report_at:
                click.echo(f"sent {sent:,}/{total:,}", err=True)
                report_at += 5.0
    except KeyboardInterrupt:
        pass
    finally:
        left = producer.flush(30.0)
    click.echo(f"sent {sent - left:,} transactions ({fraud:,} labelled fraud) to {topic}", err=True)
