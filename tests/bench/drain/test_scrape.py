"""bench drain reads the service's /metrics on 127.0.0.1 directly, whatever proxy is set."""

from prometheus_client import CollectorRegistry, Counter

from bench.drain.measure import _scrape
from core.health import serve_http


def test_scrape_ignores_a_proxy_from_the_environment(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    # nothing listens on port 9: through the proxy the scrape would fail
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    registry = CollectorRegistry()
    Counter("fraudstream_processed", "records scored", registry=registry).inc(42)
    server = serve_http(0, registry, views=lambda: [])   # the service's own /metrics endpoint
    try:
        samples = _scrape(server.server_port)
    finally:
        server.shutdown()
    assert samples["fraudstream_processed_total"] == [({}, 42.0)]
