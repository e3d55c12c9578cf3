"""What happens to records mParticle would refuse: fail, skip or dead-letter."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import typing as t

import msgspec

from target_mparticle.preflight import bounded

if t.TYPE_CHECKING:
    import pathlib

LOGGER = logging.getLogger("target-mparticle")
_ENCODER = msgspec.json.Encoder(decimal_format="number", enc_hook=str)
_WARN_FIRST = 20


class InvalidRecordFatalError(Exception):
    """A refused record under ``on_invalid_record: fail``."""


class InvalidRecords:
    """Applies ``on_invalid_record`` and keeps the dead-letter file durable.

    Dead letters are fsynced before the target writes a STATE that moves past
    them, so "deliberately dead-lettered" is as certain as "accepted".
    """

    def __init__(
        self, policy: str, dead_letter_path: pathlib.Path | None, *, replace: bool = False
    ) -> None:
        """Open the dead-letter file lazily: most runs never need it.

        `replace` (a dry run's file) starts the file afresh: an earlier dry run's dead
        letters are removed now, even if this run has none.
        """
        self.policy = policy
        self.path = dead_letter_path
        self._replace = replace
        if replace and dead_letter_path is not None:
            # The dry run's own file (start-up refused one that is dead_letter_path).
            dead_letter_path.unlink(missing_ok=True)
        self.count = 0
        self._file: t.BinaryIO | None = None
        self._dirty = False
        self._lock = threading.Lock()

    def handle(self, stream: str, record: t.Mapping[str, t.Any], reason: str) -> None:
        """Deal with one refused record according to the policy.

        The reason is cut to a few quoted values' length: it may quote a key or a
        field, and either can be megabytes long (the dead letter keeps the record).
        """
        reason = bounded(reason)
        if self.policy == "fail":
            msg = f"invalid record (on_invalid_record is 'fail'): {reason}"
            raise InvalidRecordFatalError(msg)
        with self._lock:
            self.count += 1
            if self.policy != "dead_letter" or self.count <= _WARN_FIRST:
                # A skipped record is gone but for this line: each one gets it.
                LOGGER.warning("Invalid record %s: %s", self.policy, reason)
            elif self.count == _WARN_FIRST + 1:
                LOGGER.warning(
                    "More invalid records: each is in the dead-letter file %s with its "
                    "reason; only their total is logged from now on",
                    self.path,
                )
            if self.policy == "dead_letter":
                self._write(stream, record, reason)

    def _write(self, stream: str, record: t.Mapping[str, t.Any], reason: str) -> None:
        if self._file is None:
            if self.path is None:
                msg = "dead_letter_path is empty, but on_invalid_record is dead_letter"
                raise InvalidRecordFatalError(msg)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("wb") if self._replace else self.path.open("ab")
            except OSError as exc:
                raise self._unwritable(exc) from None
        line = {
            "stream": stream,
            "reason": reason,
            "dead_lettered_at": dt.datetime.now(tz=dt.timezone.utc).isoformat(),
            "record": dict(record),
        }
        try:
            self._file.write(_ENCODER.encode(line) + b"\n")
        except OSError as exc:
            raise self._unwritable(exc) from None
        self._dirty = True

    def _unwritable(self, exc: OSError) -> InvalidRecordFatalError:
        # Checked before the run; this is a disk that changed or filled since.
        return InvalidRecordFatalError(
            f"dead_letter_path {str(self.path)!r} cannot be written ({exc.strerror or exc})"
        )

    def sync(self) -> None:
        """Make written dead letters durable; called before STATE can move on."""
        with self._lock:
            if self._file is not None and self._dirty:
                try:
                    self._file.flush()
                    os.fsync(self._file.fileno())
                except OSError as exc:
                    raise self._unwritable(exc) from None
                self._dirty = False

    def close(self) -> None:
        """Sync and close the dead-letter file."""
        self.sync()
        if self._file is not None:
            self._file.close()
            self._file = None
