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
from typing import TYPE_CHECKING

from tap_mparticle.storage import folder_date

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: Slack between a folder's name and its files' LastModified (see the module docstring).
UPLOAD_FOLDER_SLACK = dt.timedelta(days=1)


def folder_filter(
    *,
    date_folders_by: str,
    excluded: Sequence[str],
    start_date: dt.datetime | None,
    window_start: dt.datetime | None,
) -> Callable[[str], bool]:
    """Build the `skip_folder` predicate a storage listing calls for each sub-folder.

    Args:
        date_folders_by: `event_time`, `upload_time` or `none`.
        excluded: Folder prefixes other streams own, never listed.
        start_date: The configured start date, if any.
        window_start: The earliest LastModified the cursor still reads, if any.

    Returns:
        A predicate: True means the folder is not listed.
    """
    first_day: dt.date | None = None
    if date_folders_by == "event_time" and start_date is not None:
        first_day = start_date.date()
    elif date_folders_by == "upload_time" and window_start is not None:
        first_day = (window_start - UPLOAD_FOLDER_SLACK).date()

    def skip_folder(folder: str) -> bool:
        if any(folder.startswith(other) for other in excluded):
            return True
        if first_day is None:
            return False
        day = folder_date(folder)
        return day is not None and day < first_day

    return skip_folder
