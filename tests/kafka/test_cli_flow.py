"""The seed's three-terminal flow with our commands: bench produce -> python -m core ->
bench alerts, plus the Prometheus endpoint of the running service."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import urllib.request
import uuid

import pytest

from tests.kafka.eos_harness import REPO, Service, end_offsets, namespace_of, wait_drained
from tests.kafka.kafka_io import read_all

DOCS = REPO / "docs"

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bench(*args: str, timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, input=stdin)


def test_produce_score_alerts_and_metrics(kafka_bootstrap, fresh_topics, tmp_path):
    names = fresh_topics("flow")
    ns = namespace_of(names)
    out = _bench("produce", "--bootstrap", kafka_bootstrap, "--namespace", ns, "--tps", "4000",
                 "--duration", "1.5", "--fraud-rate", "0.05", "--seed", "3")
    assert out.returncode == 0, out.stderr
    assert sum(end_offsets(kafka_bootstrap, names.transactions).values()) == 6000

    port = _free_port()
    group = f"flow-{uuid.uuid4().hex[:6]}"
    svc = Service(kafka_bootstrap, names, group, tmp_path, workers=2, extra=("--metrics-port", str(port)))
    try:
        wait_drained(kafka_bootstrap, group, names.transactions, timeout=120, service=svc)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        assert svc.stop() == 0, svc.tail()
    metrics = {line.split()[0]: float(line.split()[1]) for line in body.splitlines()
               if line and not line.startswith("#")}
    assert metrics["fraudstream_scored_total"] == 6000
    assert metrics["fraudstream_transactions_total"] >= 1
    assert metrics['fraudstream_commit_seconds_bucket{le="+Inf"}'] == metrics["fraudstream_transactions_total"]
    served = {re.sub(r"(_bucket|_count|_sum)?(\{.*)?$", "", name) for name in metrics}
    missing = documented_metrics() - served
    assert not missing, f"documented but not on /metrics from the start: {sorted(missing)}"

    alerts = read_all(kafka_bootstrap, names.alerts)
    assert 0 < len(alerts) == metrics["fraudstream_alerts_total"]
    got = _bench("alerts", "--bootstrap", kafka_bootstrap, "--namespace", ns, "--json", "--from-beginning",
                 "--max", str(len(alerts)))
    assert got.returncode == 0, got.stderr
    lines = [json.loads(line) for line in got.stdout.splitlines()]
    assert {a["transaction_id"] for a in lines} == {json.loads(m.value())["transaction_id"] for m in alerts}
    pretty = _bench("alerts", "--bootstrap", kafka_bootstrap, "--namespace", ns, "--from-beginning", "--max", "1")
    assert pretty.returncode == 0 and "FRAUD ALERT" in pretty.stdout
    assert ("!!!" in pretty.stdout) or ("(!)" in pretty.stdout)


def documented_metrics() -> set[str]:
    """Every metric docs/service.md and docs/exactly-once.md name; in service.md's table,
    `..._x` after `fraudstream_state_y` stands for `fraudstream_state_x`."""
    names = set()
    for doc in ("service.md", "exactly-once.md"):
        for line in (DOCS / doc).read_text(encoding="utf-8").splitlines():
            found = re.findall(r"`(fraudstream_\w+|\.\.\._\w+)", line)
            for name in found:
                if name.startswith("..."):
                    suffix = name[3:]
                    name = found[0].split("_" + suffix[1:].split("_")[0] + "_")[0] + suffix
                names.add(name)
    return names


def test_documented_metrics_reads_the_abbreviations():
    names = documented_metrics()
    assert {"fraudstream_state_restore_target_records", "fraudstream_state_last_replay_seconds",
            "fraudstream_state_changelog_bytes_total", "fraudstream_slot_state"} <= names
    assert not any("..." in n for n in names) and len(names) >= 23


@pytest.mark.parametrize("answer", ["n\n", ""], ids=["no", "stdin-closed"])
def test_topics_delete_not_confirmed_deletes_nothing(kafka_bootstrap, fresh_topics, answer):
    names = fresh_topics("keep")
    out = _bench("topics", "delete", "--bootstrap", kafka_bootstrap, "--namespace", namespace_of(names),
                 timeout=60, stdin=answer)
    assert out.returncode == 1, out.stderr
    assert "nothing deleted" in out.stderr
    for topic in names.all():   # all four still there, with their partitions
        assert len(end_offsets(kafka_bootstrap, topic)) > 0, topic


def test_passthrough_with_header_reads_every_header_back(kafka_bootstrap):
    plain = _bench("passthrough", "--bootstrap", kafka_bootstrap, "--records", "3000", "--size", "200")
    with_header = _bench("passthrough", "--bootstrap", kafka_bootstrap, "--records", "3000",
                         "--size", "200", "--header")
    for out in (plain, with_header):
        assert out.returncode == 0, out.stderr
        assert "(3,000 of 3,000)" in out.stdout
        assert out.stdout.count("us CPU/record") == 2
    assert "with a bench header" in with_header.stderr and "with a bench header" not in plain.stderr


def test_measure_passthrough_counts_the_headers_it_read(kafka_bootstrap):
    from bench.kafka.passthrough import measure_passthrough

    r = measure_passthrough(kafka_bootstrap, 2000, 100, partitions=2, header=True)
    assert r["consumed"] == r["consumed_with_header"] == 2000
    assert r["produce_cpu_us"] > 0 and r["consume_cpu_us"] > 0
    assert measure_passthrough(kafka_bootstrap, 500, 100, partitions=1)["consumed_with_header"] == 0


def test_produce_stops_with_one_line_when_its_topic_is_deleted(kafka_bootstrap, fresh_topics):
    """`bench topics delete` while `bench produce` sends: exit 1 and one `error:` line naming the
    topic (it ended in a confluent-kafka traceback: 'Unable to produce message: Local: Unknown topic')."""
    import time

    from bench.kafka.topics import delete_topics

    names = fresh_topics("prodgone")
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "produce", "--bootstrap", kafka_bootstrap,
                             "--namespace", namespace_of(names), "--tps", "300", "--duration", "60", "--seed", "3"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        assert proc.poll() is None, proc.stderr.read()
        delete_topics(kafka_bootstrap, names)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if not line.startswith("%")]   # librdkafka's own notices
    assert lines[-1].startswith(f"error: sending to {names.transactions} failed: ") and "Unknown topic" in lines[-1], err


@pytest.mark.parametrize("command", ["produce", "alerts"])
def test_a_missing_topic_names_the_command_that_creates_it(kafka_bootstrap, command):
    """The hint names the namespace: a plain `bench topics create` makes other topics."""
    ns = f"absent-{uuid.uuid4().hex[:8]}"
    out = _bench(command, "--bootstrap", kafka_bootstrap, "--namespace", ns, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().endswith(f"(bench topics create --namespace {ns})"), out.stderr


def test_alerts_stop_with_one_line_when_their_topic_is_deleted(kafka_bootstrap, fresh_topics):
    """`bench alerts` on a topic deleted under it: exit 1 and one `error:` line, as bench produce
    (it went on waiting silently: librdkafka's error was skipped as not fatal, and seen only at
    its 5-min metadata refresh). The web feed says so on its status line until the topic is back."""
    import time

    from bench.flow.feed import AlertFeed
    from bench.kafka.topics import delete_topics

    names = fresh_topics("alertsgone")
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "alerts", "--bootstrap", kafka_bootstrap,
                             "--namespace", namespace_of(names)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    feed = AlertFeed(kafka_bootstrap, names.alerts).start()
    try:
        deadline = time.monotonic() + 30
        while not feed.assigned:
            assert time.monotonic() < deadline and feed.failed is None, feed.status()
            time.sleep(0.2)
        # found its topic and subscribed (on a loaded machine, later than the feed here)
        first = proc.stderr.readline()
        assert first.startswith("Monitoring fraud alerts"), first + proc.stderr.read()
        delete_topics(kafka_bootstrap, names)
        _, err = proc.communicate(timeout=60)
        while "does not exist any more" not in (feed.status()["error"] or ""):
            assert time.monotonic() < deadline + 60, feed.status()
            time.sleep(0.5)
    finally:
        feed.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if not line.startswith("%")]
    assert lines[-1] == f"error: {names.alerts} does not exist any more on {kafka_bootstrap} (deleted?)", err
