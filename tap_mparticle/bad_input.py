"""What `on_bad_record: skip` logs and counts, so nothing skipped goes unsaid.

Each skipped file, line, row or event is a warning naming where it is; a file's first
`LOGGED_PER_FILE` are logged one by one and the rest only counted, with the file's
total when it is done, so one file of garbage cannot bury the rest of the log (or
fill a disk) with a line per line. The run's summary gives the totals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mparticle_facts.plugin_guards import one_line

if TYPE_CHECKING:
    import logging

    from tap_mparticle.parsers import BadInputError

#: A file's (or a ZIP member's) bad items logged one by one; the rest are counted.
LOGGED_PER_FILE = 20


class SkippedInput:
    """The bad items one stream skipped: logged (up to a point) and counted per file."""

    def __init__(self, stream: str, logger: logging.Logger) -> None:
        """Nothing skipped yet."""
        self.stream = stream
        self.logger = logger
        self.items = 0
        self.by_file: dict[str, int] = {}
        self._overflowing: list[str] = []  # files past the log limit, not summed up yet

    def skipped(self, error: BadInputError) -> None:
        """Count one skipped item, and log it while its file is under the limit."""
        self.items += 1
        count = self.by_file.get(error.location, 0) + 1
        self.by_file[error.location] = count
        if count <= LOGGED_PER_FILE:
            self.logger.warning("%s: skipped bad input: %s", self.stream, error)
        elif count == LOGGED_PER_FILE + 1:
            self._overflowing.append(error.location)
            self.logger.warning(
                "%s: %s has more than %d bad items; the rest are counted, not logged one by one",
                self.stream,
                one_line(error.location),
                LOGGED_PER_FILE,
            )

    def file_done(self) -> None:
        """Give the totals of files whose bad items were too many to log one by one."""
        for location in self._overflowing:
            self.logger.warning(
                "%s: skipped %d bad items in %s (the first %d logged above)",
                self.stream,
                self.by_file[location],
                one_line(location),
                LOGGED_PER_FILE,
            )
        self._overflowing.clear()

    def summary(self) -> None:
        """Say, at the end of the stream, how much was skipped and in how many files."""
        if self.items:
            self.logger.warning(
                "%s: skipped %d bad items (lines, rows, events or files) in %d files "
                "(on_bad_record=skip)",
                self.stream,
                self.items,
                len(self.by_file),
            )
