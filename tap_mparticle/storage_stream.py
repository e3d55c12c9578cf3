"""A file object over a cloud client's chunked reader, for the GCS and Azure backends.

The parsers and the download-ahead pipe want a plain `IO[bytes]`; the GCS and Azure
clients hand back readers that fetch ranged chunks lazily, so their errors surface on
`read`, not on `open`. Wrapping them in a raw stream under `io.BufferedReader` gives
the parsers a standard file (peek, readline, iteration) and turns every client error
into the same one-line `StorageError` the S3 backend raises.
"""

from __future__ import annotations

import importlib
import io
from typing import IO, TYPE_CHECKING

from tap_mparticle.storage import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Protocol

    class ChunkReader(Protocol):
        """Anything with `read(size)` returning at most `size` bytes, b"" at the end."""

        def read(self, size: int = -1, /) -> bytes:
            """Return up to `size` bytes."""


class _RawChunks(io.RawIOBase):
    def __init__(
        self,
        reader: ChunkReader,
        errors: tuple[type[BaseException], ...],
        describe: Callable[[BaseException], str],
        close: Callable[[], None],
    ) -> None:
        self._reader = reader
        self._errors = errors
        self._describe = describe
        self._close = close

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        try:
            chunk = self._reader.read(len(buffer))
        except self._errors as exc:
            raise StorageError(self._describe(exc)) from None
        size = len(chunk)
        buffer[:size] = chunk
        return size

    def close(self) -> None:
        if not self.closed:
            self._close()
        super().close()


def chunked_stream(
    reader: ChunkReader,
    *,
    errors: tuple[type[BaseException], ...],
    describe: Callable[[BaseException], str],
    buffer_size: int,
    close: Callable[[], None] = lambda: None,
) -> IO[bytes]:
    """Wrap a client's chunk reader as a buffered binary file.

    Args:
        reader: The client's lazy reader.
        errors: Client exceptions to translate.
        describe: Builds the one-line message (never a secret) for a translated error.
        buffer_size: Read size towards the client.
        close: Releases the client's reader.

    Returns:
        A binary stream raising `StorageError` for the given errors.
    """
    return io.BufferedReader(_RawChunks(reader, errors, describe, close), buffer_size=buffer_size)


def import_extra(name: str, hint: str) -> ModuleType:
    """Import a cloud client module, or stop with one line saying which extra to install.

    Args:
        name: The module, e.g. `google.cloud.storage`.
        hint: The line to give when it is not installed.

    Returns:
        The module.

    Raises:
        StorageError: The module (its extra) is not installed.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        raise StorageError(hint) from None
