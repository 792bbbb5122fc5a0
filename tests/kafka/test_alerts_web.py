"""`bench alerts --web` in a real browser: headless Chromium (selenium) on the live page while
the real scorer (`python -m core`) turns produced transactions into alerts on the real broker.

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
import urllib.request
import uuid

import msgspec
import pytest

from tests.kafka.eos_harness import REPO, Service, namespace_of, wait_drained

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

APPEAR_S = 2.0      # an alert is on the page at most this long after it is committed
ROWS = 200          # rows the page draws (bench/flow/static/alerts.js)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1500,1000")
ROW_IDS = "return [...document.querySelectorAll('#alerts tbody tr')].map(r => r.dataset.tx)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver; .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    return webdriver.Chrome(service=DriverService(driver), options=options)


class _Committed(threading.Thread):
    """A read_committed reader of the alerts topic: when each alert became visible."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}",
                                  "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
        self.consumer.subscribe([topic])
        self.seen: dict[str, tuple[float, dict]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        decode = msgspec.json.Decoder().decode
        while not self.stop.is_set():
            for msg in self.consumer.consume(500, timeout=0.1):
                if not msg.error():
                    alert = decode(msg.value())
                    self.seen.setdefault(alert["transaction_id"], (time.monotonic(), alert))
        self.consumer.close()


def _wait_http(url: str, proc: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"bench alerts --web exited:\n{log.read_text()}"
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            assert time.monotonic() < deadline, f"no page at {url}:\n{log.read_text()}"
            time.sleep(0.2)


@contextlib.contextmanager
def _live_view(bootstrap: str, names, tmp_path):
    """`bench alerts --web` as a user starts it, open in headless Chromium and connected:
    yields (browser, status element)."""
    from selenium.webdriver.common.by import By

    port = _free_port()
    view_log = tmp_path / "view.log"
    view = subprocess.Popen([sys.executable, "-m", "bench.cli", "alerts", "--web", "--port", str(port),
                             "--bootstrap", bootstrap, "--namespace", namespace_of(names)],
                            cwd=REPO, stdout=view_log.open("w"), stderr=subprocess.STDOUT)
    browser = None
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url, view, view_log)
        browser = _browser(tmp_path)
        browser.get(url)
        status = browser.find_element(By.ID, "status")
        # the view's consumer has its partitions (it starts at the end: only new alerts)
        _until("the page to say connected", lambda: status.text.startswith("connected"))
        yield browser, status
    finally:
        if browser is not None:
            browser.quit()
        view.terminate()
        code = view.wait(30)
    # SIGTERM (a process manager's stop) ends it as Ctrl-C does
    assert code == 0, f"bench alerts --web exited {code} on SIGTERM:\n{view_log.read_text()}"


def _until(what: str, predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def test_alerts_appear_live_with_reasons_and_filter(kafka_bootstrap, fresh_topics, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    names = fresh_topics("web")
    ns = namespace_of(names)
    group = f"web-{uuid.uuid4().hex[:6]}"
    scorer = Service(kafka_bootstrap, names, group, tmp_path, workers=2)
    committed = _Committed(kafka_bootstrap, names.alerts)
    committed.start()
    try:
        with _live_view(kafka_bootstrap, names, tmp_path) as (browser, status):
            scorer.wait_workers(2)

            produced = subprocess.run(
                [sys.executable, "-m", "bench.cli", "produce", "--bootstrap", kafka_bootstrap, "--namespace", ns,
                 "--tps", "1000", "--duration", "2", "--fraud-rate", "0.05", "--seed", "11"],
                cwd=REPO, capture_output=True, text=True, timeout=120)
            assert produced.returncode == 0, produced.stderr
            drained: list[float | BaseException] = []

            def drain() -> None:
                try:
                    wait_drained(kafka_bootstrap, group, names.transactions, timeout=120, service=scorer)
                    drained.append(time.monotonic())
                except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                    drained.append(exc)

            threading.Thread(target=drain, daemon=True).start()
            on_page: dict[str, float] = {}
            deadline = time.monotonic() + 150
            while True:  # watch the page every 0.1 s while the scorer works, and after it is done
                now = time.monotonic()
                for tx in browser.execute_script(ROW_IDS):
                    on_page.setdefault(tx, now)
                if drained and isinstance(drained[0], BaseException):
                    raise drained[0]
                if drained and now > drained[0] + APPEAR_S + 1.0 and set(committed.seen) <= set(on_page):
                    break
                assert now < deadline, "alerts missing from the page"
                time.sleep(0.1)

            alerts = {tx: alert for tx, (_, alert) in committed.seen.items()}
            assert 10 <= len(alerts) <= ROWS, len(alerts)   # all of them drawn, none scrolled away
            assert set(on_page) == set(alerts)
            late = {tx: round(on_page[tx] - committed.seen[tx][0], 2) for tx in alerts
                    if on_page[tx] - committed.seen[tx][0] > APPEAR_S}
            assert not late, f"on the page more than {APPEAR_S} s after commit: {late}"

            rows = browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")
            for row in rows:
                alert = alerts[row.get_attribute("data-tx")]
                cells = row.find_elements(By.TAG_NAME, "td")
                reasons = [li.text for li in cells[8].find_elements(By.TAG_NAME, "li")]
                assert 1 <= len(reasons) <= 3 and len(reasons) == len(alert["reasons"])
                for shown, reason in zip(reasons, alert["reasons"]):
                    assert shown.startswith(reason["text"]) and reason["code"] in shown
                assert cells[1].text == alert["action_required"]
                assert row.get_attribute("class") == alert["action_required"].lower()
                assert cells[5].text == alert["card_hash"] and cells[7].text == alert["model_version"]
            # newest first: rows are in commit order, and workers' transactions can commit a
            # few ms out of the order their alerts were stamped in (seen: 3 ms)
            times = [datetime.fromisoformat(alerts[r.get_attribute("data-tx")]["alert_time"].replace("Z", "+00:00"))
                     for r in rows]
            assert all((b - a).total_seconds() <= 1.0 for a, b in zip(times, times[1:])), times
            assert "alerts/s" in status.text and "lag" in status.text
            assert browser.find_elements(By.CSS_SELECTOR, "#chart rect")
            browser.save_screenshot(str(tmp_path / "alerts.png"))

            def shown() -> set[str]:
                return set(browser.execute_script(ROW_IDS))

            critical = {tx for tx, a in alerts.items() if a["risk_level"] == "CRITICAL"}
            assert critical and critical != set(alerts), "want both BLOCK and REVIEW alerts"
            risk = Select(browser.find_element(By.ID, "risk"))
            risk.select_by_value("CRITICAL")
            assert shown() == critical
            risk.select_by_value("HIGH")
            assert shown() == set(alerts) - critical
            risk.select_by_value("")
            assert shown() == set(alerts)
            card = browser.find_element(By.ID, "card")
            one = next(iter(alerts.values()))["card_hash"]
            card.send_keys(one)
            assert shown() == {tx for tx, a in alerts.items() if a["card_hash"] == one}
            browser.save_screenshot(str(tmp_path / "alerts-filtered.png"))
            card.send_keys(Keys.CONTROL, "a")
            card.send_keys(Keys.BACKSPACE)
            assert shown() == set(alerts)
            print(f"{len(alerts)} alerts; screenshots in {tmp_path}; slowest to the page "
                  f"{max(on_page[t] - committed.seen[t][0] for t in alerts):.2f} s after commit "
                  f"(page polled every 0.1 s)")
    finally:
        committed.stop.set()
        assert scorer.stop() == 0, scorer.tail()


def _fake_alerts(first: int, n: int) -> list[bytes]:
    """n alerts as the scorer writes them, stamped now (the keep-up test needs more alerts than
    the scorer flags on this machine's spare CPU)."""
    from core.schema import Alert, Reason

    reasons = (Reason("AMOUNT_MICRO", 1.0, 2.9, "micro amount (1.00 or less), as in card testing"),
               Reason("BEHAVIOUR_V14", -3.61, 2.46, "behaviour pattern V14 = -3.610 (anonymised feature)"),
               Reason("HOUR_OF_DAY", 3.0, 0.51, "made between 03:00 and 03:59 UTC"))
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    return [msgspec.json.encode(Alert(
        alert_id=f"alert_tx-{i}", transaction_id=f"tx-{i}", card_hash=f"{i % 997:016x}", amount=0.5,
        fraud_score=0.97, risk_level="CRITICAL" if i % 3 else "HIGH", merchant_category="online_retail",
        timestamp=stamp, alert_time=stamp,
        action_required="BLOCK" if i % 3 else "REVIEW", model_version="xgb-test", reasons=reasons))
        for i in range(first, first + n)]


def test_page_keeps_up_with_2000_alerts_per_second(kafka_bootstrap, fresh_topics, tmp_path):
    from confluent_kafka import Producer
    from selenium.webdriver.common.by import By

    rate, seconds = 2000, 10
    names = fresh_topics("webload")
    with _live_view(kafka_bootstrap, names, tmp_path) as (browser, status):
        total, per_tick = rate * seconds, rate // 10
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
        start, answers, statuses = time.monotonic(), [], []
        for tick in range(seconds * 10):  # 200 alerts every 100 ms
            for value in _fake_alerts(tick * per_tick, per_tick):
                producer.produce(names.alerts, value)
            producer.poll(0)
            t0 = time.monotonic()
            browser.execute_script("return received")  # the page still answers promptly
            answers.append(time.monotonic() - t0)
            if tick % 10 == 9:
                statuses.append(status.text)
            time.sleep(max(0.0, start + (tick + 1) / 10 - time.monotonic()))
        assert producer.flush(30) == 0
        sent_at = time.monotonic()
        _until("every alert on the page", lambda: browser.execute_script("return received") == total,
               timeout=APPEAR_S + 3)
        caught_up = time.monotonic() - sent_at
        rows = browser.find_elements(By.CSS_SELECTOR, "#alerts tbody tr")
        assert len(rows) == ROWS and rows[0].get_attribute("data-tx") == f"tx-{total - 1}"
        answers.sort()
        print(f"{total} alerts at {rate}/s: all on the page {caught_up:.2f} s after the last was sent; "
              f"page answered in median {answers[len(answers) // 2] * 1000:.0f} ms, max {answers[-1] * 1000:.0f} ms; "
              f"status lines: {statuses[-3:]}")
        assert caught_up <= APPEAR_S
        assert answers[len(answers) // 2] < 0.25 and answers[-1] < 2.0
        assert any("alerts/s" in s and not s.startswith("0 ") for s in statuses)
        browser.save_screenshot(str(tmp_path / "alerts-2000-per-s.png"))
