"""Which folders a listing may skip, by the dates in their names (`date_folders_by`).

mParticle's "Store Data In Folders By Date" decides what a folder's date means:

- `event_time` ("by event time", and "by first event time, or upload time if no
  events"): the folder is the date of the batch's first event. A batch forwarded
  today can hold events from last month, so a new file can land in any old folder;
  only folders wholly before `start_date` are skipped (their events all predate it).
- `upload_time` ("by upload time", and Kinesis Firehose's `YYYY/MM/DD/HH/`
  prefixes): a new file lands in today's folder, so folders wholly before the read
  window (`cursor.window_start`: the bookmark minus the look-back window, or
  `start_date`) cannot hold unread files and are not listed. An incremental run
  then lists a day or two of folders however long the drop's history is. One day of
  slack covers the gap between the clock mParticle names a folder by (its time
  zone is not documented) and S3's LastModified.
- `none`: no folder is a date folder; every folder is listed, even one whose name
  looks like a date.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

#: mParticle's daily folders (`2024-05-01/`).
DATE_FOLDER = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")

#: Slack between a folder's name and its files' LastModified (see the module docstring).
UPLOAD_FOLDER_SLACK = dt.timedelta(days=1)


class FolderFilter:
    """The `skip_folder` predicate a storage listing calls for each sub-folder.

    It counts the folders it leaves unlisted for their date, so the run can say so: a
    folder named like a date that is not one (an app id `2019/`) is otherwise skipped
    without a word.
    """

    def __init__(
        self,
        *,
        date_folders_by: str,
        excluded: Sequence[str],
        start_date: dt.datetime | None,
        window_start: dt.datetime | None,
    ) -> None:
        """Work out the first day a folder must reach to be listed.

        Args:
            date_folders_by: `event_time`, `upload_time` or `none`.
            excluded: Folder prefixes other streams own, never listed.
            start_date: The configured start date, if any.
            window_start: The earliest LastModified the cursor still reads, if any.
        """
        self.excluded = tuple(excluded)
        self.date_folders_by = date_folders_by
        self.first_day: dt.date | None = None
        # Folder dates are UTC days: a start_date of 00:00+02:00 is 22:00 the day before.
        if date_folders_by == "event_time" and start_date is not None:
            self.first_day = start_date.astimezone(dt.timezone.utc).date()
        elif date_folders_by == "upload_time" and window_start is not None:
            self.first_day = (window_start - UPLOAD_FOLDER_SLACK).astimezone(dt.timezone.utc).date()
        #: Folders left unlisted for their date, and the first of them by name.
        self.skipped_by_date = 0
        self.example: str | None = None

    def __call__(self, folder: str) -> bool:
        """True means the folder is not listed."""
        if any(folder.startswith(other) for other in self.excluded):
            return True
        if self.first_day is None:
            return False
        day = folder_date(folder)
        if day is None or day >= self.first_day:
            return False
        self.skipped_by_date += 1
        # The first in name order, whatever order the storage lists in.
        if self.example is None or folder < self.example:
            self.example = folder
        return True


def folder_date(folder_key: str) -> dt.date | None:
    """Return the last day a date folder can hold files for, or None for any other folder.

    Two layouts are dated: mParticle's `YYYY-MM-DD/` folders, and the `YYYY/MM/DD/HH/`
    prefixes Kinesis Firehose writes (so `2024/` can hold files up to 2024-12-31,
    `2024/05/` up to 2024-05-31, `2024/05/01/` and its hour folders that day only).

    Args:
        folder_key: A folder's key, with or without its trailing slash.

    Returns:
        The date, or None.
    """
    parts = folder_key.rstrip("/").split("/")
    match = DATE_FOLDER.match(parts[-1])
    if match is not None:
        return _date(int(match[1]), int(match[2]), int(match[3]))
    # The longest run of numeric folders at the end that starts with a four-digit year.
    for size in (4, 3, 2, 1):
        chain = parts[-size:]
        if len(parts) >= size and _is_date_chain(chain):
            return _last_day([int(p) for p in chain])
    return None


#: The first year a Firehose prefix can name: S3 opened in 2006. A four-digit folder
#: before it is an app or workspace id (`1234/`), not a year whose folders a
#: `start_date` would skip unlisted.
FIRST_CHAIN_YEAR = 2006


def _is_date_chain(chain: list[str]) -> bool:
    # ASCII digits only: str.isdigit() also takes "²⁰²⁴", which int() then refuses.
    widths = (4, 2, 2, 2)[: len(chain)]
    return (
        all(len(p) == w and p.isascii() and p.isdigit() for p, w in zip(chain, widths, strict=True))
        and int(chain[0]) >= FIRST_CHAIN_YEAR
    )


def _last_day(chain: list[int]) -> dt.date | None:
    year = chain[0]
    if len(chain) == 1:
        return _date(year, 12, 31)
    month = chain[1]
    if len(chain) == 2:  # noqa: PLR2004  (year and month)
        following = _date(year + 1, 1, 1) if month == 12 else _date(year, month + 1, 1)  # noqa: PLR2004
        return None if following is None else following - dt.timedelta(days=1)
    return _date(year, month, chain[2])


def _date(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None
