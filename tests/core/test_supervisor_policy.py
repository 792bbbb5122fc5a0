"""The supervisor's policy without processes or Kafka: backoff, when the service stops, twin
detection (core.slots), what /healthz says (core.health), worker exit codes (core.worker)."""

import json

import pytest
from confluent_kafka import KafkaError, KafkaException

from core.errors import ConfigError, ExpiredByKafka, ModelError, PipelineError, SettingRefused, StateError
from core.health import health
from core.slots import (BACKOFF_CAP_S, EXIT_EXPIRED, EXIT_FENCED, EXIT_PIPELINE, EXIT_SETTING, EXIT_STARTUP,
                        EXIT_STATE, HEALTHY_AFTER_S, Decision, Slot, backoff_delay, describe_exit, format_slots)
from core.worker import exit_code_for


class Clock:
    """Injectable time: the policy takes `now` from it, nothing sleeps."""

    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _fail(slot, clock, code, *, live=2.0, up=True, service_up=True):
    """Start the slot, let it run `live` seconds (up or not), then exit with `code`."""
    clock.t = max(clock.t, slot.restart_at)
    slot.started_at(clock())
    if up:
        slot.ready(clock())
    clock.t += live
    return slot.exited(code, clock(), service_up=service_up)


def test_backoff_doubles_from_a_quarter_second_and_caps_at_30_s():
    assert [backoff_delay(n) for n in range(1, 10)] == [0.25, 0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(1000) == BACKOFF_CAP_S == 30.0


def test_a_slot_failing_at_run_time_backs_off_and_never_gives_up():
    clock, slot = Clock(), Slot(3)
    delays = []
    for _ in range(200):   # hours of a broker that is down
        assert _fail(slot, clock, EXIT_PIPELINE) is Decision.RESTART
        delays.append(slot.restart_at - clock())
        assert slot.view(clock()).state == "backing-off"
    assert delays[:3] == [0.25, 0.5, 1.0] and max(delays) == 30.0 and delays[-1] == 30.0
    assert slot.failures == 200 and slot.restarts == 199
    # start-up errors, kills, fencing once in a while: all run-time failures once the service is up
    for code in (EXIT_STARTUP, -9, EXIT_FENCED, 1, EXIT_STATE):
        assert _fail(slot, clock, code, live=120.0) is Decision.RESTART


def test_a_slot_whose_card_state_cannot_be_restored_backs_off_and_says_why():
    """A StateError (tests/kafka/test_state_input_lost.py) is retried like a Kafka error, never a
    stop of the whole service, but /healthz and the log name it."""
    clock, slot = Clock(), Slot(0)
    for failures in range(1, 4):
        assert _fail(slot, clock, EXIT_STATE, service_up=failures > 1) is Decision.RESTART
    assert slot.view(clock()).last_exit == describe_exit(EXIT_STATE) == "exit code 5 (card state cannot be restored)"
    assert slot.restart_at - clock() == 1.0


def test_a_worker_up_for_a_minute_starts_a_new_streak():
    clock, slot = Clock(), Slot(0)
    for _ in range(6):
        _fail(slot, clock, EXIT_PIPELINE)
    assert slot.restart_at - clock() == 8.0
    _fail(slot, clock, -9, live=HEALTHY_AFTER_S)
    assert slot.failures == 1 and slot.restart_at - clock() == 0.25
    # a worker that never became ready does not reset the streak however long it tried
    _fail(slot, clock, EXIT_PIPELINE, live=600.0, up=False)
    assert slot.failures == 2


def test_a_start_up_error_before_any_worker_was_up_stops_the_service():
    clock = Clock()
    assert _fail(Slot(0), clock, EXIT_STARTUP, up=False, service_up=False) is Decision.STARTUP_ERROR
    # other exits at start-up are retried: Kafka may come up a moment later
    assert _fail(Slot(1), clock, EXIT_PIPELINE, up=False, service_up=False) is Decision.RESTART
    assert _fail(Slot(2), clock, -9, up=False, service_up=False) is Decision.RESTART


def test_a_setting_the_broker_refuses_stops_the_service_even_once_it_was_up():
    """A session timeout outside the broker's range is met in the group join, after the worker
    reported ready: where the pre-flight could not read the broker's range (no DescribeConfigs
    right) the supervisor restarted every worker for ever."""
    clock = Clock()
    assert _fail(Slot(0), clock, EXIT_SETTING, service_up=True) is Decision.STARTUP_ERROR
    assert _fail(Slot(1), clock, EXIT_SETTING, live=600.0, service_up=True) is Decision.STARTUP_ERROR
    assert describe_exit(EXIT_SETTING) == "exit code 6 (the broker refuses a setting)"


def test_fenced_three_times_in_a_row_soon_after_start_is_a_twin():
    clock, slot = Clock(), Slot(0)
    assert _fail(slot, clock, EXIT_FENCED, live=5.0) is Decision.RESTART
    assert _fail(slot, clock, EXIT_FENCED, live=20.0) is Decision.RESTART
    assert _fail(slot, clock, EXIT_FENCED, live=3.0) is Decision.ID_COLLISION


def test_fenced_now_and_then_is_not_a_twin():
    """A zombie (SIGSTOPped past its transaction timeout) is fenced once; long-lived workers
    fenced or runs broken by other exits never add up to a collision."""
    clock, slot = Clock(), Slot(0)
    for _ in range(10):
        assert _fail(slot, clock, EXIT_FENCED, live=5.0) is Decision.RESTART
        assert _fail(slot, clock, EXIT_PIPELINE) is Decision.RESTART
    for _ in range(10):
        assert _fail(slot, clock, EXIT_FENCED, live=300.0) is Decision.RESTART


def test_kafka_giving_up_on_a_worker_neither_counts_as_a_twin_nor_hides_one():
    clock, slot = Clock(), Slot(0)
    for _ in range(10):   # an outage, a zombie: Kafka refuses the worker as fenced, again and again
        assert _fail(slot, clock, EXIT_EXPIRED, live=5.0) is Decision.RESTART
    assert slot.last_exit == "exit code 7 (Kafka gave up on it: transaction timeout or outage)"
    twin = Slot(1)   # a live twin fences every restart, some of which also saw Kafka unreachable
    assert _fail(twin, clock, EXIT_FENCED, live=5.0) is Decision.RESTART
    assert _fail(twin, clock, EXIT_EXPIRED, live=5.0) is Decision.RESTART
    assert _fail(twin, clock, EXIT_FENCED, live=5.0) is Decision.RESTART
    assert _fail(twin, clock, EXIT_FENCED, live=5.0) is Decision.ID_COLLISION


def test_a_slot_whose_process_died_is_aborted_at_stop_until_a_new_one_is_up():
    clock, slot = Clock(), Slot(0)
    slot.started_at(clock())
    slot.ready(clock())
    assert not slot.left_open
    slot.exited(-9, clock(), service_up=True)
    assert slot.left_open   # backing off: nobody has aborted what the killed process left open
    slot.started_at(slot.restart_at)
    assert slot.left_open   # starting: its init_transactions has not run yet
    slot.ready(slot.restart_at + 1)
    assert not slot.left_open   # up: its init_transactions aborted it


def test_healthz_is_200_only_when_every_slot_is_up():
    clock, slots = Clock(), [Slot(i) for i in range(3)]
    for s in slots:
        s.started_at(clock())
    code, body = health([s.view(clock()) for s in slots])
    assert code == 503 and json.loads(body)["up"] == 0   # starting is not up
    for s in slots:
        s.ready(clock())
    code, body = health([s.view(clock()) for s in slots])
    none_paused = {"card_state_held": 0, "offset_reset_refused": 0}
    assert (code, json.loads(body)) == (200, {"status": "ok", "up": 3, "slots": 3, "down": [],
                                              "kafka_unreachable_workers": 0, "paused_partitions": none_paused})
    # every slot up, but one cannot reach Kafka (core.reach): nothing is scored by it
    code, body = health([s.view(clock()) for s in slots], none_paused, 1)
    doc = json.loads(body)
    assert (code, doc["status"], doc["up"], doc["kafka_unreachable_workers"]) == (503, "degraded", 3, 1)
    # every slot up, but a partition held back on purpose: its input waits unscored
    for why in none_paused:
        code, body = health([s.view(clock()) for s in slots], {**none_paused, why: 1})
        doc = json.loads(body)
        assert (code, doc["status"], doc["up"], doc["paused_partitions"][why]) == (503, "degraded", 3, 1)
    for _ in range(3):
        _fail(slots[1], clock, -9)
    clock.t += 0.5
    views = [s.view(clock()) for s in slots]
    code, body = health(views)
    doc = json.loads(body)
    assert code == 503 and doc["status"] == "degraded" and doc["up"] == 2
    assert doc["down"] == [{"slot": 1, "state": "backing-off", "failures": 3, "restarts": 2,
                            "last_exit": "exit code -9 (killed by SIGKILL)", "retry_in_s": 0.5}]
    assert format_slots(views) == ("slots 2/3 up; 1 backing-off after exit code -9 (killed by SIGKILL), "
                                   "3 in a row, retry in 0.5 s")


def _kafka(code, text="x"):
    return KafkaException(KafkaError(code, text))


def _raised(exc, cause):
    try:
        raise exc from cause
    except Exception as e:  # noqa: BLE001 - the chain is what is tested
        return e


@pytest.mark.parametrize("exc, code", [
    (_raised(PipelineError("commit"), _kafka(KafkaError._FENCED)), EXIT_FENCED),
    (_raised(PipelineError("commit"), _kafka(KafkaError.PRODUCER_FENCED)), EXIT_FENCED),
    (_raised(PipelineError("consume"), _kafka(KafkaError._FATAL, "Fatal error: Broker: Static consumer fenced by "
                                              "other consumer with same group.instance.id")), EXIT_FENCED),
    (_raised(PipelineError("consume"), _kafka(KafkaError._FATAL, "Fatal error: out of memory")), EXIT_PIPELINE),
    (_raised(PipelineError("init"), _kafka(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)), EXIT_STARTUP),
    (_raised(PipelineError("produce"), _kafka(KafkaError._MSG_TIMED_OUT)), EXIT_PIPELINE),
    (PipelineError("10 transactions aborted in a row"), EXIT_PIPELINE),
    # Kafka's transaction timeout, not a twin: never counted towards an id collision
    (_raised(ExpiredByKafka("Kafka aborted its transaction"), _kafka(KafkaError._FENCED)), EXIT_EXPIRED),
    (ConfigError("topic(s) x do not exist"), EXIT_STARTUP),
    (SettingRefused("kafka.session.timeout.ms: the broker at b refuses it"), EXIT_SETTING),
    (ModelError("cannot load"), EXIT_STARTUP),
    (StateError("w: t.transactions[0] 50..99, scored after the card-state snapshot, is gone"), EXIT_STATE),
    (_raised(StateError("w: cannot read the end of t.card-state[0]"), _kafka(KafkaError._TIMED_OUT)), EXIT_STATE),
    (_raised(StateError("w: cannot read t.card-state[0]"), _kafka(KafkaError.TOPIC_AUTHORIZATION_FAILED)),
     EXIT_STARTUP),
])
def test_the_worker_exit_code_says_what_ended_it(exc, code):
    assert exit_code_for(exc) == code


def test_more_workers_than_partitions_names_the_idle_ones_and_the_fix():
    from core.supervisor import surplus_text

    text = surplus_text(7, 6, "transactions")
    assert text.startswith("7 workers for the 6 partitions of transactions: 1 of them will hold no partition")
    assert "--workers 6" in text


class _Ended:
    """A worker process that has already exited with `exitcode`."""

    def __init__(self, pid, exitcode):
        self.pid, self.exitcode = pid, exitcode

    def is_alive(self):
        return False

    def join(self, timeout=None):
        pass


def test_a_worker_that_stopped_leaving_its_transaction_open_is_aborted_at_stop():
    import multiprocessing

    import msgspec

    from core.config import ScoringConfig
    from core.supervisor import Supervisor, _Process
    from core.worker import LeftOpen

    sup = Supervisor(ScoringConfig())
    pipes = {}
    for slot, code, left_open in ((0, 0, False), (1, 0, True), (2, -9, False)):
        reader, writer = multiprocessing.Pipe(duplex=False)
        if left_open:   # what a worker sends after run() returned with its transaction left open
            writer.send_bytes(msgspec.msgpack.Encoder().encode(LeftOpen()))
        writer.close()
        sup._procs[slot] = _Process(_Ended(100 + slot, code), reader)
        pipes[slot] = reader
    unclean, unanswered = sup._stop_children()
    assert unclean == [1, 2] and unanswered   # 0 stopped cleanly; 2 was killed
    assert all(p.closed for p in pipes.values())


def test_a_slot_whose_process_cannot_be_made_backs_off_and_the_service_goes_on():
    # a fork refused (EAGAIN: out of processes) raised out of the supervisor's loop: every
    # slot stopped with it
    import errno
    import multiprocessing

    from core.config import ScoringConfig
    from core.slots import SlotState
    from core.supervisor import Supervisor

    pipes = []

    class Refusing:
        def Pipe(self, duplex):   # noqa: N802 - multiprocessing's name
            pipes.append(multiprocessing.Pipe(duplex=duplex))
            return pipes[-1]

        def Process(self, **kwargs):   # noqa: N802
            class Proc:
                def start(self):
                    raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
            return Proc()

    clock = Clock()
    sup = Supervisor(ScoringConfig())
    sup.clock = clock
    slot = Slot(0)
    sup._start(Refusing(), slot, b"")
    assert slot.state is SlotState.BACKING_OFF and slot.failures == 1 and 0 not in sup._procs
    assert slot.restart_at == clock() + backoff_delay(1)
    assert "no process started ([Errno 11] Resource temporarily unavailable)" in slot.last_exit
    assert all(end.closed for end in pipes[0])
    sup._start(Refusing(), slot, b"")
    assert slot.failures == 2 and slot.restart_at == clock() + backoff_delay(2)


def test_a_process_that_no_wait_can_start_stops_the_service_before_any_worker_was_up():
    import errno

    from core.config import ScoringConfig
    from core.errors import StartupError
    from core.supervisor import Supervisor

    class Missing:
        def Pipe(self, duplex):   # noqa: N802 - multiprocessing's name
            import multiprocessing
            return multiprocessing.Pipe(duplex=duplex)

        def Process(self, **kwargs):   # noqa: N802
            raise OSError(errno.ENOENT, "No such file or directory", "/opt/python/bin/python3")

    sup = Supervisor(ScoringConfig())
    with pytest.raises(StartupError, match="worker 0: no process could be started: .*No such file"):
        sup._start(Missing(), Slot(0), b"")
    sup._service_up = True   # once a worker was up, the same error is waited out like any failure
    slot = Slot(0)
    sup._start(Missing(), slot, b"")
    assert slot.failures == 1 and "No such file" in slot.last_exit
