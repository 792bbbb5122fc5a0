"""The seed's three-terminal flow: `bench score` (the scoring service), `bench produce` (the
payment-gateway simulator) and `bench alerts` (the investigators' feed)."""

from __future__ import annotations

import sys
import time
import uuid

import click
import msgspec

from bench.flow.alert_text import format_alert
from bench.kafka.topics import require_topic
from bench.options import BOOTSTRAP, NAMESPACE, check_not_empty
from core.cli import score   # the service's one command (same as `python -m core`)
from core.topics import TopicNames

__all__ = ["score", "produce", "alerts"]

@click.command()
@BOOTSTRAP
@NAMESPACE
@click.option("--tps", default=1000.0, show_default=True, type=click.FloatRange(min=0.1), help="Transactions per second.")
@click.option("--duration", default=60.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds to run.")
@click.option("--fraud-rate", default=0.01, show_default=True, type=click.FloatRange(0, 1), help="Share of fraud.")
@click.option("--seed", default=None, type=int, help="Random seed [default: time-based, printed].")
@click.option("--cards", default=10_000, show_default=True, type=click.IntRange(1), help="Distinct cards (more cards: less event time per transaction).")
def produce(bootstrap, namespace, tps, duration, fraud_rate, seed, cards):
    """Send synthetic card transactions (with fraud patterns) at a steady rate,
    keyed by card hash.

    Their event times (the `timestamp` field) are card history at ~7 payments per card a
    day, the pace the model learned from, ending when the send starts: 60 s at 2,000/s on
    10,000 cards replay ~41 h of it. The latency header carries the real send time.

    \b
    Example:
      bench produce --tps 2000 --duration 60
    """
    from confluent_kafka import KafkaException, Producer

    from bench.errors import TopicError
    from bench.flow.demo_traffic import demo_chunks
    from bench.load.header import HEADER, pack_header  # the latency sink understands this traffic too
    from bench.load.synth import generate

    seed = int(time.time()) if seed is None else seed
    topic = TopicNames.namespaced(namespace).transactions
    total = max(1, int(tps * duration))
    try:
        chunks = demo_chunks(total, cards=cards, seed=seed, end=time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--cards") from None
    require_topic(bootstrap, topic, namespace)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    history_h = (chunks[-1].start + chunks[-1].span_s - chunks[0].start) / 3600
    click.echo(f"producing {total:,} transactions to {topic} at {tps:,.0f}/s (seed {seed}): "
               f"{history_h:,.1f} h of event time on {cards:,} cards, ending now", err=True)
    start = time.monotonic_ns()
    wall0 = time.time_ns() - start
    period_ns = 1e9 / tps
    sent, fraud, report_at = 0, 0, time.monotonic() + 5.0
    try:
        for chunk in chunks:
            n = chunk.n
            batch = generate(n, seed=chunk.seed, fraud_rate=fraud_rate, n_cards=cards,
                             id_offset=chunk.id_offset, start=chunk.start, span_s=chunk.span_s)
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
    except KafkaException as exc:   # e.g. the topic deleted while sending: one line, not a traceback
        producer.purge()
        raise TopicError(f"sending to {topic} failed: {exc.args[0].str()}") from None
    finally:
        left = producer.flush(30.0)
    click.echo(f"sent {sent - left:,} transactions ({fraud:,} labelled fraud) to {topic}", err=True)


@click.command()
@BOOTSTRAP
@NAMESPACE
@click.option("--json", "as_json", is_flag=True, help="One raw alert JSON per line (for jq, files, pipes).")
@click.option("--from-beginning", is_flag=True, help="Replay every committed alert, not only new ones.")
@click.option("--max", "max_alerts", type=click.IntRange(1), help="Exit after this many alerts.")
@click.option("--group", default=None, callback=check_not_empty,
              help="Consumer group (default: a fresh one, nothing committed).")
@click.option("--web", is_flag=True, help="Serve a live page of the alerts instead of printing them.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="With --web: HTTP port (0: any free port).")
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="With --web: address to listen on (the page is read-only; think before 0.0.0.0).")
def alerts(bootstrap, namespace, as_json, from_beginning, max_alerts, group, web, port, bind):
    """Tail the fraud-alerts topic (read_committed: only alerts of committed
    transactions), BLOCK marked `!!!`, REVIEW `(!)`, each with its top reason.
    With --web, serve them live to a browser instead: newest first, with their
    three reasons, a filter by risk level and card, and alerts per minute.

    \b
    Examples:
      bench alerts
      bench alerts --json --from-beginning | jq .amount
      bench alerts --web --port 8080      # then open http://127.0.0.1:8080/
    """
    if web and (as_json or max_alerts is not None or group is not None):
        raise click.UsageError("--web shows alerts in a browser: it takes no --json, --max or --group")
    topic = TopicNames.namespaced(namespace).alerts
    require_topic(bootstrap, topic, namespace)
    _stop_on_sigterm()
    if web:
        from bench.flow.feed import AlertFeed
        from bench.flow.web import serve

        feed = AlertFeed(bootstrap, topic, from_beginning=from_beginning).start()
        try:
            serve(feed, bind=bind, port=port, echo=lambda m: click.echo(m, err=True))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {bind}:{port}: {exc.strerror or exc}")
        finally:
            feed.stop()
        return
    from confluent_kafka import Consumer, KafkaError

    from bench.errors import TopicError

    from bench.flow.feed import alert_reader_settings

    consumer = Consumer(alert_reader_settings(bootstrap, group or f"fraudstream-alerts-{uuid.uuid4().hex[:8]}",
                                              from_beginning, commit=group is not None))
    consumer.subscribe([topic])
    if not as_json:
        click.echo(f"Monitoring fraud alerts on {topic} ({bootstrap})...", err=True)
    decode = msgspec.json.Decoder().decode
    seen, last_error = 0, ""
    out = sys.stdout
    try:
        while max_alerts is None or seen < max_alerts:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                error = msg.error()
                if error.fatal():
                    raise click.ClickException(f"{topic}: {error.str()}")
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:   # as bench produce: one line, exit 1
                    raise TopicError(f"{topic} does not exist any more on {bootstrap} (deleted?)")
                if error.str() != last_error:   # a broker down or back: say so, once per change
                    click.echo(f"warning: {topic}: {error.str()}", err=True)
                    last_error = error.str()
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


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop_on_sigterm() -> None:
    """SIGTERM (a process manager, `kill`) ends the feed as Ctrl-C does: clients closed, exit 0."""
    import signal

    signal.signal(signal.SIGTERM, _interrupt)
