"""`bench alerts --web`: the live alert view, served with the standard library.

    GET /             the page (bench/flow/static/alerts.html, shipped in the package)
    GET /static/<f>   its script and style sheet
    GET /events       server-sent events: one `data:` line every BATCH_S with every alert
                      committed since the last one, plus counts per minute and the feed status

Why http.server and a thread per browser: the view is read-only, local (127.0.0.1 unless told
otherwise) and watched by a few investigators; each client thread wakes 5 times a second and
writes one event with everything new, so at 2,000 alerts/s a client costs ~5 writes/s, not
2,000. No third-party server, nothing to install, nothing fetched from a CDN.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.flow.feed import AlertFeed

__all__ = ["serve", "make_server", "event", "is_loopback", "BATCH_S", "BACKFILL"]

BATCH_S = 0.2        # one event per client per 200 ms, with all new alerts
IDLE_S = 1.0         # with no new alert, still one event a second: status and chart move on
BACKFILL = 200       # alerts a newly opened page starts with
_STATIC = {"alerts.html": "text/html; charset=utf-8", "alerts.js": "text/javascript",
           "alerts.css": "text/css"}


def _asset(name: str) -> bytes:
    return importlib.resources.files("bench.flow").joinpath("static", name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server_version = "fraudstream-alerts"
    feed: AlertFeed
    stopping: threading.Event

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass  # one line per request would drown the terminal at 5 events/s per client

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            return self._send_asset("alerts.html")
        if path.startswith("/static/") and path[len("/static/"):] in _STATIC:
            return self._send_asset(path[len("/static/"):])
        if path == "/events":
            return self._events()
        self.send_error(HTTPStatus.NOT_FOUND)

    def _read_only(self) -> None:
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, "read-only view")

    do_POST = do_PUT = do_DELETE = do_PATCH = _read_only

    def _send_asset(self, name: str) -> None:
        body = _asset(name)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", _STATIC[name])
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def _events(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        feed = self.feed
        cursor, _ = feed.since(0)
        cursor = max(0, cursor - BACKFILL)
        sent_at = 0.0
        try:
            while not self.stopping.is_set():
                cursor, alerts = feed.since(cursor)
                if alerts or time.monotonic() - sent_at >= IDLE_S:
                    self.wfile.write(event(alerts, feed.minutes(), feed.status()))
                    self.wfile.flush()
                    sent_at = time.monotonic()
                self.stopping.wait(BATCH_S)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the page was closed


def event(alerts: list[bytes], minutes: list[tuple[str, int]], status: dict) -> bytes:
    """One server-sent event: {"alerts": [...], "minutes": [[minute, n], ...], "status": {...},
    "server_time": epoch s}; the alerts are spliced in as the feed keeps them (one line each)."""
    rest = json.dumps({"minutes": minutes, "status": status, "server_time": time.time()},
                      separators=(",", ":")).encode()
    return b"".join((b'data: {"alerts":[', b",".join(alerts), b"],", rest[1:], b"\n\n"))


def make_server(feed: AlertFeed, bind: str, port: int) -> ThreadingHTTPServer:
    """The HTTP server (not yet serving); port 0 picks a free one (server.server_port)."""
    stopping = threading.Event()
    handler = type("Handler", (_Handler,), {"feed": feed, "stopping": stopping})
    server = ThreadingHTTPServer((bind, port), handler)
    server.daemon_threads = True
    server.stopping = stopping
    return server


def is_loopback(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return bind == "localhost"


def serve(feed: AlertFeed, *, bind: str, port: int, echo=print) -> None:
    """Serve until Ctrl-C; the feed must be started."""
    server = make_server(feed, bind, port)
    host = f"[{bind}]" if ":" in bind else bind
    echo(f"alert view on http://{host}:{server.server_port}/ (alerts from {feed.topic}; "
         f"Ctrl-C stops)")
    if not is_loopback(bind):
        echo(f"warning: bound to {bind}: anyone who can reach this address sees the alerts")
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()
