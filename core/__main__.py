"""`python -m core`: the exactly-once scoring service (same command as `bench score`; see core.cli)."""

import signal

from core.stopsignals import stop_signals

# Installed before the imports below (numpy, the model...): a SIGTERM during start-up is then
# remembered and answered with a clean stop instead of killing the process mid-import.
_EARLY_SIGNALS: list[int] = []
for _sig in stop_signals():
    signal.signal(_sig, lambda signum, frame: _EARLY_SIGNALS.append(signum))

import sys  # noqa: E402

from core.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(early_signals=_EARLY_SIGNALS))
