"""Singer output that writes RECORD messages in blocks, and flushes on everything else.

The SDK's msgspec writer flushes stdout after every message, and under
`PYTHONUNBUFFERED=1` (common in containers and CI) stdout has no buffer at all:
one write system call per record, which costs more than serialising it. Here
records collect in a block of up to `BLOCK_BYTES`; any other message (SCHEMA,
STATE) writes the block and itself at once, so a target never sees a STATE
before the records it covers, and a killed tap loses only records no STATE
vouched for, which the next run reads again.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib.messages import RecordMessage
from typing_extensions import override

if TYPE_CHECKING:
    from collections.abc import Callable

    from singer_sdk.singerlib.messages import Message

BLOCK_BYTES = 256 * 1024


class BufferedMsgSpecWriter(MsgSpecWriter):
    """msgspec serialisation with RECORD output written in blocks."""

    def __init__(self) -> None:
        """Start with an empty block."""
        super().__init__()
        self._block = bytearray()
        #: True while a block is on its way out: a stop then waits for its end, or the
        #: reader would get a line cut in two (see `interrupt`).
        self.writing = False
        #: Called once the block being written is out (a stop that waited for it).
        self.after_write: Callable[[], None] | None = None

    @override
    def write_message(self, message: Message) -> None:
        self._block += self.format_message(message)
        if len(self._block) >= BLOCK_BYTES or not isinstance(message, RecordMessage):
            self.writing = True
            try:
                _write_all(sys.stdout.buffer, self._block)
            finally:
                self.writing = False
            self._block.clear()
            if self.after_write is not None:
                self.after_write()


def _write_all(out: IO[bytes], block: bytearray) -> None:
    """Write and flush the whole block, however little each write takes.

    Under `PYTHONUNBUFFERED` stdout's binary layer is the raw file, whose `write`
    may take only part of a block (a pipe write that a signal interrupts returns what
    it wrote so far): the rest is written on, never dropped.
    """
    view = memoryview(block)
    while view:
        written = out.write(view)
        view = view[written or 0 :]
    out.flush()
