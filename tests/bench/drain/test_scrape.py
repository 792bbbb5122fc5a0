"""bench drain reads the service's /metrics on 127.0.0.1 directly, whatever proxy is set."""

import http.server
import threading

from bench.drain.measure import _scrape


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"# TYPE fraudstream_processed_total counter\nfraudstream_processed_total 42.0\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_scrape_ignores_a_proxy_from_the_environment(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    # nothing listens on port 9: through the proxy the scrape would fail
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    server = http.server.HTTPServer(("127.0.0.1", 0), _Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        samples = _scrape(server.server_port)
    finally:
        server.shutdown()
    assert samples["fraudstream_processed_total"] == [({}, 42.0)]
