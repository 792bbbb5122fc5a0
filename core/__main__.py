"""`python -m core`: the exactly-once scoring service (same command as `bench score`; see core.cli)."""

import signal

# Installed before the imports below (numpy, the model...): a SIGTERM during start-up is then
# remembered and answered with a clean stop instead of killing the process mid-import.
# SIGHUP (the terminal closed) stops the service as SIGTERM does, unless started ignoring it (nohup).
_EARLY_SIGNALS: list[int] = []
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    if signal.getsignal(_sig) is not signal.SIG_IGN:
        signal.signal(_sig, lambda signum, frame: _EARLY_SIGNALS.append(signum))

import sys  # noqa: E402

from core.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(early_signals=_EARLY_SIGNALS))
