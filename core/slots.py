"""What the supervisor does when a worker slot's process exits: the restart policy, pure.

A slot is one scoring process the supervisor keeps running (slot `i` uses the ids
``<prefix>-<i>``). Its states:

    starting      its process runs but does not consume yet (spawn, model, init_transactions)
    up            its process consumes (the worker said so through its status pipe)
    backing-off   its process exited; the next one starts at `restart_at`

Deaths in a row back off exponentially (0.25 s, 0.5 s, 1 s ... capped at 30 s) and are
retried forever: a run-time failure (Kafka unreachable, a partition without a leader, a
batch that keeps aborting) never stops the service, and the other slots go on scoring. A
worker that stayed up for HEALTHY_AFTER_S starts a new streak. Two exits end the service:

- a start-up error (model, config, topics, credentials) of a worker before any worker of
  the service has been up: nothing is going to work, so say it once and stop;
- an id collision: the slot's process was fenced (another process took its transactional.id
  or group.instance.id) FENCED_IN_A_ROW times in a row, each within TWIN_WINDOW_S of its
  start. A dead predecessor never fences (a slot restarts only after its process exited), and a
  zombie that outlived its transaction timeout is fenced once; only a live twin with the same
  ids fences every restart.

Times are plain floats from the caller's clock, so the policy is tested without waiting.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass

__all__ = ["SlotState", "Slot", "Decision", "SlotView", "backoff_delay", "describe_exit", "format_slots",
           "EXIT_PIPELINE", "EXIT_STARTUP", "EXIT_FENCED", "EXIT_STATE", "EXIT_SETTING", "EXIT_EXPIRED",
           "BACKOFF_BASE_S", "BACKOFF_CAP_S",
           "HEALTHY_AFTER_S", "TWIN_WINDOW_S", "FENCED_IN_A_ROW"]

EXIT_PIPELINE = 2   # run-time Kafka failure (broker gone, aborts in a row, ...): back off, restart
EXIT_STARTUP = 3    # model, config, topics or credentials unusable in the worker
EXIT_FENCED = 4     # another process took this slot's transactional.id / group.instance.id
# A partition's per-card state cannot be rebuilt exactly (core.errors.StateError: an undecodable
# changelog record, input deleted since the snapshot under offset_reset refuse): back off and
# retry like EXIT_PIPELINE (some causes pass, e.g. offsets unavailable for a minute), but say so.
EXIT_STATE = 5
# The broker refuses a client setting (core.errors.SettingRefused): the service stops even after
# its workers were up, since every restart would meet the same refusal.
EXIT_SETTING = 6
# Kafka gave up on the worker (core.errors.ExpiredByKafka: its transaction outlived
# transaction.timeout.ms, or it was dropped during an outage) and now refuses it as fenced.
# Restarted like EXIT_PIPELINE; neither counted towards an id collision nor breaking a streak
# of fenced exits (a twin's fencing may meet a worker that also saw an outage).
EXIT_EXPIRED = 7

BACKOFF_BASE_S = 0.25
# A slot failing for hours still retries twice a minute: a broker back from maintenance is
# picked up within 30 s, and a failing slot costs the host a process start per 30 s at most.
BACKOFF_CAP_S = 30.0
# Up this long and then dead: a new problem, not the same one again (the backoff restarts).
HEALTHY_AFTER_S = 60.0
# A twin with the same ids fences our restarted worker as soon as its own backoff has passed
# and its worker started, i.e. within BACKOFF_CAP_S plus a start-up (seconds).
TWIN_WINDOW_S = 60.0
FENCED_IN_A_ROW = 3


class SlotState(str, enum.Enum):
    STARTING = "starting"
    UP = "up"
    BACKING_OFF = "backing-off"


class Decision(str, enum.Enum):
    RESTART = "restart"            # after slot.restart_at
    STARTUP_ERROR = "startup"      # the service cannot start: stop with the worker's reason
    ID_COLLISION = "collision"     # a live twin uses this slot's ids: stop, name the id


def backoff_delay(failures: int) -> float:
    """Seconds before restarting a slot after `failures` deaths in a row (>= 1)."""
    return min(BACKOFF_BASE_S * 2.0 ** (max(failures, 1) - 1), BACKOFF_CAP_S)


def describe_exit(code: int | None) -> str:
    """"exit code -9 (killed by SIGKILL)", "exit code 4 (fenced ...)": what ended a worker."""
    if code is not None and code < 0:
        try:
            why = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            why = f"killed by signal {-code}"
    else:
        why = {EXIT_PIPELINE: "Kafka error", EXIT_STARTUP: "start-up error",
               EXIT_FENCED: "fenced by another process with its ids",
               EXIT_STATE: "card state cannot be restored", EXIT_SETTING: "the broker refuses a setting",
               EXIT_EXPIRED: "Kafka gave up on it: transaction timeout or outage"}.get(code, "")
    return f"exit code {code}" + (f" ({why})" if why else "")


@dataclass(frozen=True)
class SlotView:
    """One slot as /healthz, /metrics and the stats line show it."""

    slot: int
    state: str
    failures: int
    restarts: int
    last_exit: str
    retry_in_s: float


@dataclass
class Slot:
    """Restart bookkeeping of one worker slot (no processes here: see Supervisor)."""

    index: int
    state: SlotState = SlotState.STARTING
    started: float = 0.0
    up_since: float | None = None
    failures: int = 0          # deaths in a row (reset by a worker up for HEALTHY_AFTER_S)
    fenced_in_a_row: int = 0
    restarts: int = 0
    restart_at: float = 0.0
    last_exit: str = ""
    # A process of this slot died, and none since has initialised its transactions (which
    # aborts what the dead one left open): the supervisor aborts it if the service stops now.
    left_open: bool = False

    def started_at(self, now: float) -> None:
        if self.state is SlotState.BACKING_OFF:
            self.restarts += 1
        self.state, self.started, self.up_since = SlotState.STARTING, now, None

    def ready(self, now: float) -> None:
        if self.state is SlotState.STARTING:
            self.state, self.up_since = SlotState.UP, now
        self.left_open = False

    def exited(self, code: int | None, now: float, *, service_up: bool) -> Decision:
        """Count this slot's process exit (code as multiprocessing gives it: -N for signal N).

        `service_up`: some worker of the service has been up since it started."""
        lived = now - self.started
        if code == EXIT_FENCED and lived < TWIN_WINDOW_S:
            self.fenced_in_a_row += 1
        elif code != EXIT_EXPIRED:
            self.fenced_in_a_row = 0
        self._failed(describe_exit(code), now)
        self.left_open = True
        if code == EXIT_SETTING or (code == EXIT_STARTUP and not service_up):
            return Decision.STARTUP_ERROR
        if self.fenced_in_a_row >= FENCED_IN_A_ROW:
            return Decision.ID_COLLISION
        return Decision.RESTART

    def not_started(self, error: str, now: float) -> None:
        """No process could be made for this slot (a fork or pipe refused: out of processes,
        memory or file descriptors): counted as a failure, tried again after the back-off."""
        self._failed(f"no process started ({error})", now)

    def _failed(self, last_exit: str, now: float) -> None:
        # one more failure in a row (a worker up for HEALTHY_AFTER_S started a new count): back off
        if self.up_since is not None and now - self.up_since >= HEALTHY_AFTER_S:
            self.failures = 0
        self.failures += 1
        self.last_exit = last_exit
        self.state, self.up_since = SlotState.BACKING_OFF, None
        self.restart_at = now + backoff_delay(self.failures)

    def view(self, now: float) -> SlotView:
        retry = max(0.0, self.restart_at - now) if self.state is SlotState.BACKING_OFF else 0.0
        return SlotView(self.index, self.state.value, self.failures, self.restarts, self.last_exit, retry)


def format_slots(views: list[SlotView]) -> str:
    """The slots part of the stats line: "slots 6/6 up" or "slots 5/6 up; 3 backing-off after ..."."""
    up = sum(v.state == SlotState.UP.value for v in views)
    text = f"slots {up}/{len(views)} up"
    down = [v for v in views if v.state != SlotState.UP.value]
    for v in down[:4]:
        if v.state == SlotState.BACKING_OFF.value:
            text += (f"; {v.slot} backing-off after {v.last_exit}, {v.failures} in a row, "
                     f"retry in {v.retry_in_s:.1f} s")
        else:
            text += f"; {v.slot} {v.state}" + (f" after {v.last_exit}" if v.last_exit else "")
    if len(down) > 4:
        text += f"; {len(down) - 4} more down"
    return text
