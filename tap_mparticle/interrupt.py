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
stopped reading never takes. A signal that lands while a block of messages is
being written waits for the end of that block (so the reader never gets a line cut
in two, which a loader takes for malformed input), for at most `FINISH_WRITE_S`
seconds: a reader that has stopped for good cannot hold the tap.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from tap_mparticle.writer import BufferedMsgSpecWriter

#: How long a stop waits for the block being written to reach the reader.
FINISH_WRITE_S = 10.0


def stop_on_signal(
    logger: logging.Logger, signum: int, writer: BufferedMsgSpecWriter | None = None
) -> None:
    """Stop as `stop_now` does, once the block `writer` may be writing is out.

    A second signal while waiting stops at once.

    Args:
        logger: The tap's logger.
        signum: The signal received.
        writer: The tap's writer, if it is ours.
    """
    if writer is None or not writer.writing or writer.after_write is not None:
        stop_now(logger, signum)
    writer.after_write = lambda: stop_now(logger, signum)
    # The main thread is in the write; this thread ends a wait the reader never ends.
    timer = threading.Timer(FINISH_WRITE_S, stop_now, (logger, signum))
    timer.daemon = True
    timer.start()


def stop_now(logger: logging.Logger, signum: int) -> NoReturn:
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
