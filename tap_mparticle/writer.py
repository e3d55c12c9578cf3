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
from typing import TYPE_CHECKING

from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib.messages import RecordMessage
from typing_extensions import override

if TYPE_CHECKING:
    from singer_sdk.singerlib.messages import Message

BLOCK_BYTES = 256 * 1024


class BufferedMsgSpecWriter(MsgSpecWriter):
    """msgspec serialisation with RECORD output written in blocks."""

    def __init__(self) -> None:
        """Start with an empty block."""
        super().__init__()
        self._block = bytearray()

    @override
    def write_message(self, message: Message) -> None:
        self._block += self.format_message(message)
        if len(self._block) >= BLOCK_BYTES or not isinstance(message, RecordMessage):
            out = sys.stdout.buffer
            out.write(self._block)
            out.flush()
            self._block.clear()
