"""The signals that stop the service cleanly, for the supervisor (core.service), each worker
(core.worker) and `python -m core`'s first milliseconds (core.__main__): SIGTERM, SIGINT and
SIGHUP. A closed terminal sends SIGHUP to the whole process group; before it was handled, it
killed supervisor and workers on the spot (no log line, no abort of what killed workers left
open). SIGHUP only unless it is ignored: a service started under nohup keeps ignoring it.

Only `signal` is imported here: __main__ installs these handlers before the heavy imports.
"""

from __future__ import annotations

import signal

__all__ = ["stop_signals"]


def stop_signals() -> list[int]:
    """SIGTERM, SIGINT, and SIGHUP unless its disposition now is SIG_IGN."""
    hangup = [] if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN else [signal.SIGHUP]
    return [signal.SIGTERM, signal.SIGINT, *hangup]
