"""bench alerts --web without Kafka: the feed's buffer, the event format, the read-only server
(the page itself is tested in a browser against the real broker: tests/kafka/test_alerts_web.py)."""

import json
import threading
import urllib.error
import urllib.request

import pytest

from bench.flow.feed import MINUTES, AlertFeed
from bench.flow.web import BACKFILL, event, is_loopback, make_server


def _alert(i: int, minute: str = "2026-12-05T21:40") -> bytes:
    return json.dumps({"transaction_id": f"tx-{i}", "alert_time": f"{minute}:00.000001Z"},
                      separators=(",", ":")).encode()


def test_since_returns_what_is_newer_than_the_cursor_oldest_first():
    feed = AlertFeed("unused:9092", "t.fraud-alerts", keep=5)
    assert feed.since(0) == (0, [])
    feed._add([_alert(1), _alert(2)], ["m", "m"])
    cursor, got = feed.since(0)
    assert cursor == 2 and got == [_alert(1), _alert(2)]
    feed._add([_alert(i) for i in range(3, 10)], ["m"] * 7)
    cursor, got = feed.since(cursor)   # 7 new, only 5 kept: the newest 5
    assert cursor == 9 and got == [_alert(i) for i in range(5, 10)]
    assert feed.since(9) == (9, [])


def test_minutes_keep_the_last_thirty():
    feed = AlertFeed("unused:9092", "t.fraud-alerts")
    for m in range(3 * MINUTES):
        feed._add([_alert(m)] * (m % 4 + 1), [f"2026-12-05T{m // 60:02d}:{m % 60:02d}"] * (m % 4 + 1))
    minutes = feed.minutes()
    assert len(minutes) == MINUTES and minutes[-1] == ("2026-12-05T01:29", 89 % 4 + 1)
    assert [m for m, _ in minutes] == sorted(m for m, _ in minutes)


def test_an_event_is_one_line_of_json():
    raw = event([_alert(1), _alert(2)], [("2026-12-05T21:40", 2)], {"connected": True, "lag": 0})
    assert raw.startswith(b"data: ") and raw.endswith(b"\n\n") and raw.count(b"\n") == 2
    body = json.loads(raw[len(b"data: "):])
    assert [a["transaction_id"] for a in body["alerts"]] == ["tx-1", "tx-2"]
    assert body["minutes"] == [["2026-12-05T21:40", 2]] and body["status"]["connected"] is True
    assert json.loads(event([], [], {})[6:])["alerts"] == []


@pytest.fixture
def server():
    feed = AlertFeed("unused:9092", "t.fraud-alerts")
    feed._add([_alert(i) for i in range(BACKFILL + 50)], ["2026-12-05T21:40"] * (BACKFILL + 50))
    srv = make_server(feed, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.stopping.set()
    srv.shutdown()
    srv.server_close()


def test_the_page_and_its_assets_come_from_the_package(server):
    page = urllib.request.urlopen(server + "/").read().decode()
    assert "<table id=\"alerts\">" in page and "/static/alerts.js" in page
    assert "http" not in page.replace("http-equiv", "")  # nothing from a CDN
    script = urllib.request.urlopen(server + "/static/alerts.js").read().decode()
    assert "new EventSource(\"/events\")" in script and "const KEEP = 1000, ROWS = 200" in script
    assert urllib.request.urlopen(server + "/static/alerts.css").headers["Content-Type"] == "text/css"


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/static/../web.py", 404), ("GET", "/admin", 404), ("POST", "/", 405),
    ("DELETE", "/events", 405), ("PUT", "/static/alerts.js", 405),
])
def test_read_only(server, method, path, status):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(server + path, method=method, data=b""
                                                      if method != "GET" else None))
    assert err.value.code == status


def test_a_new_page_starts_with_the_newest_alerts(server):
    with urllib.request.urlopen(server + "/events", timeout=5) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        first = stream.readline()
    alerts = json.loads(first[len(b"data: "):])["alerts"]
    assert [a["transaction_id"] for a in alerts] == [f"tx-{i}" for i in range(50, BACKFILL + 50)]


@pytest.mark.parametrize("bind, loopback", [("127.0.0.1", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False),
                                            ("192.168.1.4", False)])
def test_loopback(bind, loopback):
    assert is_loopback(bind) is loopback


def test_a_feed_that_cannot_start_says_why():
    feed = AlertFeed("127.0.0.1:9092", "t.fraud-alerts")
    feed._consume = lambda: (_ for _ in ()).throw(ValueError("bad config"))
    feed.start()
    feed.stop()
    status = feed.status()
    assert status["connected"] is False
    assert status["error"] == "alert feed stopped: ValueError: bad config"
