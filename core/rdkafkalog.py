"""librdkafka's log lines through Python logging, with repeats collapsed.

By itself librdkafka writes to stderr in its own format (`%3|1796665390.582|FAIL|rdkafka#consumer-5|
...`), and while every broker is down it writes a line per connection attempt, about 20 a
second per client: a 90 s outage of a one-node broker left 7,200 such lines in the log of a
two-worker service (2026-12-07). The loop's own clients are given `client_logger()` instead:
confluent-kafka hands each line to Python logging when the client is polled (consume, poll,
flush), so it carries the worker's time, name and level like every other line, and
`RepeatFilter` lets the first line of a kind through and counts the others for `window_s`.
Clients that are not polled often (admin clients, the idle changelog reader) keep stderr at
`QUIET_LOG_LEVEL`: their failures reach the loop as exceptions anyway.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Callable

__all__ = ["RepeatFilter", "client_logger", "LOGGER_NAME", "QUIET_LOG_LEVEL"]

LOGGER_NAME = "core.rdkafka"
# librdkafka's syslog levels: 2 is critical, so connection failures (3) are not printed.
QUIET_LOG_LEVEL = 2
_DIGITS = re.compile(r"\d+")
_MAX_KINDS = 1000   # distinct kinds remembered at once; beyond it the oldest are forgotten


class RepeatFilter(logging.Filter):
    """Passes the first record of each kind, then drops the same kind for `window_s`; the next
    one passed after that says how many were dropped. A kind is the client's type
    (its name, numbers masked), the facility and the text with every number masked (ports,
    milliseconds, counts differ): one line per kind, not per client."""

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._kinds: dict[tuple, list] = {}   # kind -> [time its window opened, records dropped since]

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        kind = tuple(_DIGITS.sub("#", str(a)) for a in args) or (_DIGITS.sub("#", str(record.msg)),)
        now = self.clock()
        seen = self._kinds.get(kind)
        if seen is not None and now - seen[0] < self.window_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} (and {seen[1]:,} more like it in {now - seen[0]:.0f} s)"
        if len(self._kinds) >= _MAX_KINDS and seen is None:
            del self._kinds[next(iter(self._kinds))]
        self._kinds.pop(kind, None)
        self._kinds[kind] = [now, 0]
        return True


def client_logger() -> logging.Logger:
    """The logger the loop's consumer and producer log through (one RepeatFilter per process)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, RepeatFilter) for f in logger.filters):
        logger.addFilter(RepeatFilter())
    return logger
