"""The service's HTTP endpoint (``--metrics-port``): Prometheus ``/metrics`` and ``/healthz``.

``/healthz`` answers 200 when every worker slot is up (consuming), every worker reaches Kafka
and no input partition is paused, and 503 otherwise, during start-up too, with a JSON body
naming the slots that are not up and counting the workers that find no broker answering
(core.reach) and the paused partitions::

    {"status": "degraded", "up": 5, "slots": 6,
     "down": [{"slot": 3, "state": "backing-off", "failures": 4, "restarts": 4,
               "last_exit": "Kafka error (exit code 2)", "retry_in_s": 3.2}],
     "kafka_unreachable_workers": 0,
     "paused_partitions": {"card_state_held": 0, "offset_reset_refused": 0}}

so a load balancer or an orchestrator's readiness probe sees a partly working service as not
ready, and an operator sees which slot fails and why. A paused partition is one the workers
hold back on purpose, each with an error line: its card state cannot be restored exactly
(core.stateholds), or its committed offset is missing under offset_reset refuse
(core.offsets). Every slot is up then, but that partition's input waits unscored. ``/metrics`` adds
``fraudstream_slot_state{slot, state}`` (1 for the slot's current state, 0 for the others)
and ``fraudstream_slot_restarts_total{slot}`` to the workers' aggregated counters.
"""

from __future__ import annotations

import dataclasses
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping, Sequence

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from core.errors import ConfigError
from core.metrics import PAUSED_KINDS
from core.slots import SlotState, SlotView

__all__ = ["serve_http", "health", "SlotCollector"]

_STATES = [s.value for s in SlotState]


def health(views: Sequence[SlotView], paused: Mapping[str, int] | None = None,
           unreachable: int = 0) -> tuple[int, bytes]:
    """(HTTP status, JSON body) of /healthz for these slots, `paused` partitions
    and `unreachable` workers (core.metrics.worker_conditions)."""
    down = [dataclasses.asdict(v) for v in views if v.state != SlotState.UP.value]
    for d in down:
        d["retry_in_s"] = round(d["retry_in_s"], 1)
    paused = dict(paused) if paused is not None else dict.fromkeys(PAUSED_KINDS, 0)
    ok = views and not down and not unreachable and not any(paused.values())
    body = {"status": "ok" if ok else "degraded", "up": len(views) - len(down), "slots": len(views),
            "down": down, "kafka_unreachable_workers": unreachable, "paused_partitions": paused}
    return (200 if body["status"] == "ok" else 503), msgspec.json.encode(body) + b"\n"


class SlotCollector:
    """Prometheus collector of the slots' states, read from `views()` at scrape time."""

    def __init__(self, views: Callable[[], Sequence[SlotView]]):
        self.views = views

    def collect(self):
        state = GaugeMetricFamily("fraudstream_slot_state", "Worker slot state (1: the slot is in this state)",
                                  labels=["slot", "state"])
        restarts = CounterMetricFamily("fraudstream_slot_restarts", "Worker processes restarted, per slot",
                                       labels=["slot"])
        for v in self.views():
            for name in _STATES:
                state.add_metric([str(v.slot), name], 1.0 if v.state == name else 0.0)
            restarts.add_metric([str(v.slot)], v.restarts)
        yield state
        yield restarts


def serve_http(port: int, registry: CollectorRegistry, views: Callable[[], Sequence[SlotView]],
               conditions: Callable[[], tuple[Mapping[str, int], int]] | None = None) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on `port` (all interfaces) from a daemon thread;
    `conditions()`: the workers' paused partitions and how many find no Kafka broker answering,
    at this instant (core.metrics.worker_conditions)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    status, body, kind = 200, generate_latest(registry), CONTENT_TYPE_LATEST
                elif path == "/healthz":
                    status, body = health(views(), *(conditions() if conditions else (None, 0)))
                    kind = "application/json"
                else:
                    status, body, kind = 404, b"not found: try /metrics or /healthz\n", "text/plain"
            except Exception as exc:   # noqa: BLE001 - a worker's metrics file torn or unreadable
                # an answer, not a dropped connection (and a traceback on stderr per scrape)
                status, body, kind = 500, f"cannot read the workers' metrics: {exc!r}\n".encode(), "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - scrapes are not news
            pass

    try:
        server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on port {port}: {exc.strerror} "
                          f"(--metrics-port 0 turns them off)") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="fraudstream-http", daemon=True).start()
    return server
