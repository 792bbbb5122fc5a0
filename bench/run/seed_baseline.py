"""The seed's design, as a pipeline under test: what fraudstream is measured against.

Per message: json.loads, a feature dict, single-row XGBoost predict_proba, json.dumps of the
enriched event, produce, and a *synchronous* offset commit; a flush every 100 messages. Same
model, same topics, same wire contract as fraudstream, so the only difference a comparison
shows is the design. (At-least-once, as the seed was; input headers are carried to outputs so
the harness can time it.)

    python -m bench.run.seed_baseline --bootstrap 127.0.0.1:9092 --namespace NS --workers 2
"""

import argparse
import json
import multiprocessing as mp
import signal
import sys
from datetime import datetime, timezone

__all__ = ["main", "worker"]


def _load(meta_path):
    import numpy as np
    import xgboost

    from core.model import load_meta
    from core.paths import stateless_model_path
    from core.risk import LEVEL_NAMES, RiskBands

    # The seed's design sees each message alone: it can only run a stateless model (the
    # default model uses per-card velocity features).
    meta, path = load_meta(meta_path if meta_path is not None else stateless_model_path())
    model = xgboost.XGBClassifier()
    model.load_model(str(path))
    model.set_params(n_jobs=1)  # one row at a time: threads only add overhead
    return np, model, RiskBands.from_meta(meta), LEVEL_NAMES, float(meta.threshold)


def worker(bootstrap: str, namespace: str, group: str, meta_path: str | None) -> None:
    """One seed-style consumer: poll one message, score it, produce, commit synchronously."""
    from confluent_kafka import Consumer, KafkaError, Producer

    from core.features import build_features
    from core.topics import TopicNames

    np, model, bands, level_names, threshold = _load(meta_path)
    topics = TopicNames.namespaced(namespace)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    running = True

    def stop(signum, frame):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer.subscribe([topics.transactions])
    processed = 0
    while running:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                print(f"consumer error: {msg.error()}", file=sys.stderr)
            continue
        try:
            tx = json.loads(msg.value())
            v = [[tx.get(f"V{i}", 0.0) for i in range(1, 29)]]
            ts = datetime.fromisoformat(tx["timestamp"].replace("Z", "+00:00"))
            x = build_features([tx["amount"]], [ts.hour], v)
            score = float(model.predict_proba(x)[0, 1])
            is_fraud, level = bands.classify(np.array([score], dtype=np.float32))
            enriched = {**tx, "fraud_score": score, "is_fraud": bool(is_fraud[0]),
                        "risk_level": level_names[int(level[0])], "threshold": threshold,
                        "scored_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}
            key, headers = msg.key(), msg.headers()
            producer.produce(topics.scores, value=json.dumps(enriched).encode(), key=key,
                             headers=headers)
            if enriched["is_fraud"]:
                alert = {"alert_id": f"alert_{tx['transaction_id']}",
                         "transaction_id": tx["transaction_id"], "card_hash": tx["card_hash"],
                         "amount": tx["amount"], "fraud_score": score,
                         "risk_level": enriched["risk_level"],
                         "merchant_category": tx.get("merchant_category"),
                         "timestamp": tx["timestamp"], "alert_time": enriched["scored_at"],
                         "action_required": "BLOCK" if enriched["risk_level"] == "CRITICAL" else "REVIEW"}
                producer.produce(topics.alerts, value=json.dumps(alert).encode(), key=key,
                                 headers=headers)
        except (ValueError, KeyError, TypeError) as exc:  # the seed printed and skipped
            print(f"processing error at {msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc}",
                  file=sys.stderr)
            continue
        consumer.commit(message=msg, asynchronous=False)
        processed += 1
        if processed % 100 == 0:
            producer.flush(5)
    producer.flush(10)
    consumer.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run.seed_baseline",
        description="The seed's per-message design as a pipeline under test (for comparisons).",
        epilog="example: python -m bench.run.seed_baseline --bootstrap 127.0.0.1:9092 --workers 2")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--namespace", default="")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--group", dest="group_id", default="seed-baseline")
    parser.add_argument("--model", default=None, help="model metadata file")
    parser.add_argument("-X", action="append", default=[], metavar="KEY=VALUE",
                        help="ignored: the seed had fixed client settings")
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    children = [ctx.Process(target=worker, args=(args.bootstrap, args.namespace, args.group_id,
                                                 args.model), name=f"seed-worker-{i}")
                for i in range(args.workers)]
    for c in children:
        c.start()

    def forward(signum, frame):
        for c in children:
            if c.is_alive():
                c.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for c in children:
        c.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
