"""The state is on by default and visible; --no-state / ScoringConfig(state=False) is the
stateless path and needs no card-state topic."""

from __future__ import annotations

import uuid

import msgspec
import pytest
from confluent_kafka.admin import AdminClient
from prometheus_client import REGISTRY

from core.config import ScoringConfig
from core.snapshot import MARKER_KEY
from core.statemetrics import StateGauges
from tests.core.velocity_ref import stateless_model_path
from tests.kafka.eos_harness import make_inputs, produce_inputs
from tests.kafka.kafka_io import read_all
from tests.kafka.test_scoring_service import _score_until_drained

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]
N = 2_000
MORE = 60   # a restart's input: fewer cards than the state holds


@pytest.fixture(scope="module")
def scorer():
    # the stateless model: the off test needs one, and the on test then shows that the state
    # is computed and carried even when the model does not use it
    from core.scorer import Scorer

    return Scorer.load(stateless_model_path())


def test_state_is_on_by_default_written_and_measured(kafka_bootstrap, fresh_topics, scorer):
    names = fresh_topics("state-on")
    inputs = make_inputs(N, 0, 3, n_cards=200, span_s=3600.0)
    produce_inputs(kafka_bootstrap, names.transactions, inputs)
    assert ScoringConfig().state is True
    group = f"state-on-{uuid.uuid4().hex[:6]}"
    StateGauges.get().last_seconds.set(0)   # this test's restores, not an earlier test's
    _score_until_drained(kafka_bootstrap, names, scorer, "state-on", group=group)
    events = [msgspec.json.decode(m.value()) for m in read_all(kafka_bootstrap, names.scores, expect=N)]
    assert len(events) == N and all("card" in e for e in events)
    assert max(e["card"]["tx_1h"] for e in events) > 5
    state = read_all(kafka_bootstrap, names.state, idle_s=1.0)
    # snapshots: cards by key, each followed by the marker of the input offset it is at
    # (tests/kafka/test_state_restore.py restores and replays from them)
    keys = {m.key() for m in state}
    assert MARKER_KEY in keys and len(keys) > 10
    assert keys - {MARKER_KEY} <= {k for k, _, _ in inputs.records}
    assert REGISTRY.get_sample_value("fraudstream_state_cards") == 200
    assert REGISTRY.get_sample_value("fraudstream_state_bytes") > 0
    assert REGISTRY.get_sample_value("fraudstream_state_last_restore_seconds") > 0   # each partition restored

    # A restart restores the cards from the changelog: the state holds all 200 cards again,
    # though its new input touches fewer.
    more = make_inputs(MORE, 0, 9, n_cards=200, span_s=3600.0, id_offset=N)
    produce_inputs(kafka_bootstrap, names.transactions, more)
    StateGauges.get().last_seconds.set(0)
    _score_until_drained(kafka_bootstrap, names, scorer, "state-on", group=group)
    assert len({k for k, _, _ in more.records}) < 200
    assert REGISTRY.get_sample_value("fraudstream_state_cards") == 200
    assert REGISTRY.get_sample_value("fraudstream_state_last_restore_seconds") > 0
    again = [msgspec.json.decode(m.value()) for m in read_all(kafka_bootstrap, names.scores, expect=N + MORE)]
    assert len(again) == N + MORE


def test_stateless_needs_no_state_topic_and_writes_no_card(kafka_bootstrap, fresh_topics, scorer):
    names = fresh_topics("state-off")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.delete_topics([names.state])[names.state].result(30)
    produce_inputs(kafka_bootstrap, names.transactions, make_inputs(300, 0, 4))
    _score_until_drained(kafka_bootstrap, names, scorer, "state-off", state=False)
    events = [msgspec.json.decode(m.value()) for m in read_all(kafka_bootstrap, names.scores, expect=300)]
    assert len(events) == 300 and not any("card" in e for e in events)
