"""`bench alerts`: the investigators' feed, tailing fraud-alerts (read_committed)."""

from __future__ import annotations

import sys
import uuid

import click
import msgspec

from bench.topics import BOOTSTRAP, NAMESPACE, require_topic
from core.topics import TopicNames

__all__ = ["alerts", "format_alert"]


def format_alert(alert: dict) -> str:
    """One alert as the seed's investigation console printed it."""
    action = alert.get("action_required", "REVIEW")
    symbol = "!!!" if action == "BLOCK" else "(!)"
    amount = alert.get("amount")
    score = alert.get("fraud_score")
    return "\n".join([
        f"\n{symbol} FRAUD ALERT {symbol}",
        f"  TX:       {alert.get('transaction_id')}",
        f"  Card:     {alert.get('card_hash')}",
        f"  Amount:   ${amount:.2f}" if isinstance(amount, (int, float)) else f"  Amount:   {amount}",
        f"  Score:    {score:.4f}" if isinstance(score, (int, float)) else f"  Score:    {score}",
        f"  Risk:     {alert.get('risk_level')}",
        f"  Action:   {action}",
        f"  Category: {alert.get('merchant_category', 'unknown')}",
    ])


@click.command()
@BOOTSTRAP
@NAMESPACE
@click.option("--json", "as_json", is_flag=True, help="One raw alert JSON per line (for jq, files, pipes).")
@click.option("--from-beginning", is_flag=True, help="Replay every committed alert, not only new ones.")
@click.option("--max", "max_alerts", type=click.IntRange(1), help="Exit after this many alerts.")
@click.option("--group", default=None, help="Consumer group (default: a fresh one, nothing committed).")
def alerts(bootstrap, namespace, as_json, from_beginning, max_alerts, group):
    """Tail the fraud-alerts topic (read_committed: only alerts of committed
    transactions), BLOCK marked `!!!`, REVIEW `(!)`.

    \b
    Examples:
      bench alerts
      bench alerts --json --from-beginning | jq .amount
    """
    from confluent_kafka import Consumer

    topic = TopicNames.namespaced(namespace).alerts
    require_topic(bootstrap, topic)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group or f"fraudstream-alerts-{uuid.uuid4().hex[:8]}",
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest" if from_beginning else "latest",
        "enable.auto.commit": group is not None,
    })
    consumer.subscribe([topic])
    if not as_json:
        click.echo(f"Monitoring fraud alerts on {topic} ({bootstrap})...", err=True)
    decode = msgspec.json.Decoder().decode
    seen = 0
    out = sys.stdout
    try:
        while max_alerts is None or seen < max_alerts:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().fatal():
                    raise click.ClickException(f"{topic}: {msg.error().str()}")
                continue
            seen += 1
            if as_json:
                out.write(msg.value().decode("utf-8", "replace") + "\n")
                out.flush()
                continue
            try:
                click.echo(format_alert(decode(msg.value())))
            except (msgspec.DecodeError, TypeError):
                click.echo(f"\n??? unreadable alert at {topic}[{msg.partition()}]@{msg.offset()}")
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
