"""A worker stuck inside a transactional call that never returns (as librdkafka's
send_offsets_to_transaction did after a broker outage, core.txnwatch) exits, its slot restarts,
and the input is scored exactly once: the `hang` fault holds a share of commits for ever, and
the watch gives up on them after HANG_WATCH_S."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.kafka.eos_harness import Service, make_inputs, produce_inputs, verify, wait_drained

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]


def test_a_worker_stuck_in_a_commit_exits_and_its_restart_carries_on(kafka_bootstrap, fresh_topics, tmp_path,
                                                                     monkeypatch):
    names = fresh_topics("stuck")
    inputs = make_inputs(20_000, 20, seed=41)
    group = f"stuck-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("FRAUDSTREAM_FAULTS", "hang:0.02")   # inherited by the service
    with Service(kafka_bootstrap, names, group, tmp_path, workers=2,
                 extra=("--batch-max-records", "500")) as svc:
        svc.wait_workers(2)
        produce_inputs(kafka_bootstrap, names.transactions, inputs, tps=4000)
        wait_drained(kafka_bootstrap, group, names.transactions, timeout=200, service=svc)
        assert svc.stop() == 0, svc.tail()
    log = svc.log_path.read_text()
    stuck = re.findall(r"died with exit code 2 \(Kafka error\) after [\d.]+ s: librdkafka has not returned "
                       r"from commit_transaction for \d s", log)
    print(f"{len(stuck)} workers stuck in a commit and restarted")
    assert stuck, svc.tail()
    v = verify(kafka_bootstrap, names, inputs)
    print(v)
    assert v.exactly_once(), v
