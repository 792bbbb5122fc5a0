"""A watch on librdkafka's transactional calls: one that never returns is reported, and the
service's worker exits so that its restart carries on.

Every transactional call the loop makes is given a timeout (core.txn.TXN_CALL_S), yet
librdkafka can wait for ever before it: after a broker outage, an abort that had to bump the
producer's epoch left send_offsets_to_transaction blocked on its own queue's answer (py-spy:
rd_kafka_txn_op_req0 in cnd_wait, no timeout), for minutes and through a SIGTERM
(2026-12-07, librdkafka 2.16.0; the kind of hang of librdkafka #3013 and #3348). Nothing in the
process can end such a call. Exiting is safe at any instant (the kill -9 proofs): the restarted
slot's init_transactions aborts the open transaction and scoring resumes from the committed
offsets. An embedded loop cannot exit its host's process: it logs the error, once per call.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from core.txn import TXN_CALL_S

__all__ = ["CallWatch", "STUCK_S", "OVERDUE_S"]

log = logging.getLogger(__name__)

# Four times the timeout of a transactional call (core.txn.TXN_CALL_S, 5 s): a call this old is
# stuck. A call given a longer timeout (init_transactions, 10 s) counts as stuck only this long
# after its timeout has passed (CallWatch.begin's `timeout_s`).
STUCK_S = 20.0
_PAST_TIMEOUT_S = 10.0
# A call this long past its own timeout (TXN_CALL_S for the loop's calls) is overdue: librdkafka
# waits on Kafka, or is stuck, and the loop - blocked in the call - cannot probe or report it.
# `on_overdue` is told once, long before the call counts as stuck.
OVERDUE_S = 3.0


class CallWatch:
    """`begin(what)` / `end()` around each call; a daemon thread calls `on_overdue(what, seconds)`
    once for a call OVERDUE_S past its own timeout, and `on_stuck(what, seconds)` once for a
    call that has not ended after `stuck_s` (longer for a call with a long timeout)."""

    def __init__(self, name: str, on_stuck: Callable[[str, float], None] | None = None,
                 stuck_s: float = STUCK_S, clock: Callable[[], float] = time.monotonic,
                 on_overdue: Callable[[str, float], None] | None = None):
        self.name = name
        self.on_stuck = on_stuck or self._report
        self.on_overdue = on_overdue
        self.stuck_s = stuck_s
        self.clock = clock
        self._call: tuple[str, float, float, float] | None = None   # (what, began at, overdue after, stuck after)
        self._reported: tuple[str, float, float, float] | None = None
        self._overdue: tuple[str, float, float, float] | None = None
        self._lock = threading.Lock()   # one report per call, whoever checks
        self._thread: threading.Thread | None = None

    def begin(self, what: str, timeout_s: float = 0.0) -> None:
        """A call to `what` begins; one given `timeout_s` is stuck after that plus _PAST_TIMEOUT_S
        at the earliest."""
        limit = max(self.stuck_s, timeout_s + _PAST_TIMEOUT_S) if timeout_s else self.stuck_s
        self._call = (what, self.clock(), (timeout_s or TXN_CALL_S) + OVERDUE_S, limit)
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="fraudstream-txn-watch", daemon=True)
            self._thread.start()

    def end(self) -> None:
        self._call = None

    def check(self) -> None:
        """One look at the call in progress (the thread's work, callable alone in tests)."""
        with self._lock:
            call = self._call
            if call is None or call == self._reported:
                return
            waited = self.clock() - call[1]
            overdue = self.on_overdue is not None and waited >= call[2] and call != self._overdue
            if overdue:
                self._overdue = call
            stuck = waited >= call[3]
            if stuck:
                self._reported = call
        if overdue:
            self.on_overdue(call[0], waited)
        if stuck:
            self.on_stuck(call[0], waited)

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)
            self.check()

    def _report(self, what: str, waited: float) -> None:
        log.error("%s: librdkafka has not returned from %s for %.0f s, past its own timeout: this "
                  "consumer is stuck in it and stop() cannot end the wait; restart the process (the "
                  "restart aborts the open transaction and resumes from the committed offsets)",
                  self.name, what, waited)
