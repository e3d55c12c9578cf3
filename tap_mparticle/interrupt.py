"""What the tap does on SIGINT or SIGTERM: one ERROR line, no STATE, exit 128 + signal.

The SDK's handler writes the tap's current state and exits 0, so an orchestrator
(or a shell's `&&`) takes a run cut short for a finished one, with only an INFO
line to tell them apart. A stopped tap must say so and fail the way a shell
reports a killed command (130 for SIGINT, 143 for SIGTERM).

No STATE is written on the way out: every STATE the tap wrote came after the
records it covers (see `writer`), so the last one a target received is the place
the next run resumes from. Records in the writer's block are dropped with the
process; no STATE vouched for them, and the next run reads their files again.

The process ends with `os._exit`: a normal exit would wait for downloads in
flight and for the interpreter's last flush of stdout, which a reader that has
stopped reading never takes.
"""

from __future__ import annotations

import logging
import os
import signal
import sys


def stop_on_signal(logger: logging.Logger, signum: int) -> None:
    """Log the signal in one ERROR line and end the process with 128 + its number.

    Args:
        logger: The tap's logger.
        signum: The signal received.
    """
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    logger.error(
        "Received %s: stopping without writing a new STATE; records after the last STATE "
        "written are incomplete, and the next run resumes from that STATE",
        name,
    )
    sys.stderr.flush()
    logging.shutdown()
    os._exit(128 + signum)
