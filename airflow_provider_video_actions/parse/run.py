"""The run of one parse: its progress log."""

from __future__ import annotations

import time
from typing import Any

#: Seconds between the progress lines of a long parse.
DEFAULT_PROGRESS_INTERVAL = 30.0


def counted(count: int, noun: str) -> str:
    """``1 error``, ``2,000 errors``: a count with its noun in the right number (the nouns logged here take an s)."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


class ParseProgress:
    """Logs how far a parse has got, at most once per ``interval`` seconds: bytes read, rows, rate, files left."""

    def __init__(self, log: Any, interval: float, total_bytes: int, files: int) -> None:
        self.log, self.interval, self.total_bytes, self.files = log, interval, total_bytes, files
        self.started = self._logged = time.monotonic()
        self.bytes_read, self.files_started, self._file = 0, 0, None

    def read(self, uri: str, size: int, rows: int) -> None:
        """Count a chunk of ``size`` bytes of ``uri``; log a line if ``interval`` has passed since the last one."""
        if uri != self._file:
            self._file, self.files_started = uri, self.files_started + 1
        self.bytes_read += size
        now = time.monotonic()
        if now - self._logged >= self.interval:
            self._logged = now
            self.log.info("%s", self.line(now, rows))

    def line(self, now: float, rows: int) -> str:
        """The progress line: ``Progress: 1,024 of 4,096 bytes read (25%), 12 rows, 0.3 MB/s; 3 of 4 files left``."""
        share = 100 * self.bytes_read // self.total_bytes if self.total_bytes else 100
        rate = self.bytes_read / max(now - self.started, 1e-6) / 1e6
        left = self.files - self.files_started + 1  # the file being read is not done yet
        return (
            f"Progress: {self.bytes_read:,} of {counted(self.total_bytes, 'byte')} read ({share}%), "
            f"{counted(rows, 'row')}, {rate:.1f} MB/s; {left:,} of {counted(self.files, 'file')} left"
        )
